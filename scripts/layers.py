#!/usr/bin/env python3
"""The runtime crate's import graph, checked: which module imports which (`crate::…` and
`super::…` paths), collapsed to top-level modules (`fetchers::<backend>`,
`resilience::<layer>` kept apart; `engine::*` and `source::*` are one module each), every
import checked against the layer order below (an import may point to its own layer or
one below, never up), and every cycle. Exit status 1 on an upward import, a cycle, or a
module that has no layer. `.ci/run` runs it.

Layers, from the bottom (the crate's top-level docs show the same map):

  0 seam      the Source trait and what it speaks: spec, request, raw value, change,
              fetch context; errors; placeholders; typed fetchers; secrets
  1 support   what every backend may use: transport, TLS, bounded reads,
              conversion, tasks, metrics, report rows, the environment (env and
              secret_file are also backends, but every backend reads the environment)
  2 backends and layers: fetchers::<backend> (and fetchers::stream, shared by the push
              backends), resilience::<layer>, test doubles
  3 catalog   fetchers (the table of built-in backends)
  4 registry  sources (Sources: named sources and their layers; knows no engine)
  5 engine    engine (the pipeline of stages)
  6 api       api (generated methods' runtime), live, assign, __private, the crate root

    python3 scripts/layers.py        # problems only
    python3 scripts/layers.py -v     # and every edge with its layers
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
        # crude: use crate::a::b  and crate::a::b::c paths anywhere; not `$crate::` (a
        # macro's path, resolved where it expands through the crate's public paths)
        for t in re.findall(r'(?<!\$)\bcrate::((?:[a-z_0-9]+::)*[a-z_0-9]+)',txt):
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
    if s[0] in ('fetchers','resilience','test_util') and len(s)>1: return s[0]+'::'+s[1]
    return s[0]

SUPPORT_FETCHERS={'fetchers::transport','fetchers::tls','fetchers::env','fetchers::secret_file'}
def layer(m):
    if m in ('error','placeholder','source','fetcher','secret','partial','violations'): return 0
    if m in ('task','metrics','convert','report','config_doc','preflight','standalone','rules') or m in SUPPORT_FETCHERS: return 1
    # the table of clients opened from fetched addresses: catalog, like the table above
    if m=='fetchers::connect': return 3
    if m.startswith('fetchers::') or m=='resilience' or m.startswith('resilience::') or m=='test_util' or m.startswith('test_util::'): return 2
    if m=='fetchers': return 3
    if m=='sources': return 4
    if m=='engine': return 5
    if m in ('api','live','assign','assign_from','__private','crate'): return 6
    return None
NAMES=['seam','support','backends/layers','catalog','registry','engine','api']
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
bad=0
for c in sccs:
    if len(c)>1:
        print('CYCLE:',sorted(c)); bad+=1
nodes=set(g)|{b for bs in g.values() for b in bs}
for m in sorted(nodes):
    if layer(m) is None:
        print(f'NO LAYER: {m} (add it to layer() in scripts/layers.py)'); bad+=1
for a in sorted(g):
    for b in sorted(g[a]):
        la,lb=layer(a),layer(b)
        if la is not None and lb is not None and lb>la:
            print(f'UP: {a} ({NAMES[la]}) imports {b} ({NAMES[lb]})'); bad+=1
if '-v' in sys.argv:
    for a in sorted(g): print(a,f'[{NAMES[layer(a)] if layer(a) is not None else "?"}]','->',sorted(g[a]))
print(f'layers: {len(nodes)} modules, {sum(len(v) for v in g.values())} imports, {bad} problem(s)')
sys.exit(1 if bad else 0)
