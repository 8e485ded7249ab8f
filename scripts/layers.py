#!/usr/bin/env python3
"""The runtime crate's import graph: which module imports which (`crate::…` and `super::…`
paths), collapsed to top-level modules (`fetchers::<backend>`, `resilience::<layer>` kept
apart), and every cycle in it. Exit status 1 when there is a cycle.

Not yet run by `.ci/run`: today it finds one cycle, `sources`, `plan`, `nested` (of issue
30's knot, `live`, `fetchers` and `fetchers::env` ⇄ `fetchers::secret_file` are out).
Once the layout imports one way, add `python3 scripts/layers.py` to `.ci/run`.

    python3 scripts/layers.py        # the cycles
    python3 scripts/layers.py -v     # and every edge
"""
import os,re,sys,collections
root=os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'component_model_async', 'src')
def modname(path):
    rel=os.path.relpath(path,root)[:-3]
    parts=rel.split('/')
    if parts[-1]=='mod': parts=parts[:-1]
    if parts==['lib']: return 'crate'
    return '::'.join(parts)
edges=collections.defaultdict(set)
mods=set()
for d,_,fs in os.walk(root):
    for f in fs:
        if not f.endswith('.rs'): continue
        p=os.path.join(d,f); m=modname(p); mods.add(m)
        txt=open(p).read()
        # crude: use crate::a::b  and crate::a::b::c paths anywhere
        for t in re.findall(r'crate::((?:[a-z_0-9]+::)*[a-z_0-9]+)',txt):
            segs=t.split('::')
            # longest prefix that's a module
            tgt=None
            for i in range(len(segs),0,-1):
                c='::'.join(segs[:i])
                if c in mods or os.path.exists(os.path.join(root,*segs[:i])+'.rs') or os.path.exists(os.path.join(root,*segs[:i],'mod.rs')):
                    tgt=c;break
            if tgt and tgt!=m and not m.startswith(tgt+'::') and not tgt.startswith(m+'::'):
                edges[m].add(tgt)
        for t in re.findall(r'\bsuper::([a-z_0-9]+)',txt):
            parent='::'.join(m.split('::')[:-1]) if f!='mod.rs' else '::'.join(m.split('::')[:-1])
            c=(parent+'::'+t) if parent else t
            if os.path.exists(os.path.join(root,*c.split('::'))+'.rs') or os.path.exists(os.path.join(root,*c.split('::'),'mod.rs')):
                if c!=m: edges[m].add(c)
# collapse to top-level groups
def top(m):
    s=m.split('::')
    if s[0] in ('fetchers','resilience','test_util','convert') and len(s)>1: return s[0]+'::'+s[1]
    return s[0]
g=collections.defaultdict(set)
for a,bs in edges.items():
    for b in bs:
        ta,tb=top(a),top(b)
        if ta!=tb: g[ta].add(tb)
# SCCs (Tarjan)
idx={};low={};st=[];on=set();sccs=[];i=[0]
def sc(v):
    idx[v]=low[v]=i[0];i[0]+=1;st.append(v);on.add(v)
    for w in g.get(v,()):
        if w not in idx: sc(w);low[v]=min(low[v],low[w])
        elif w in on: low[v]=min(low[v],idx[w])
    if low[v]==idx[v]:
        c=[]
        while True:
            w=st.pop();on.discard(w);c.append(w)
            if w==v:break
        sccs.append(c)
sys.setrecursionlimit(10000)
for v in list(g): 
    if v not in idx: sc(v)
for c in sccs:
    if len(c)>1: print('CYCLE:',sorted(c))
if '-v' in sys.argv:
    for a in sorted(g): print(a,'->',sorted(g[a]))
sys.exit(1 if any(len(c) > 1 for c in sccs) else 0)
