# Shared by bench/scale and bench/soak (sourced, not run): tools, builds, certificates, the
# peers' configurations, /proc sampling and cleanup. The sourcing script sets, before
# sourcing: NAME (its name, for logs and the work directory), INSTANCE (Orca's instance: it
# manages only these containers) and IMAGES (the image tags it builds and removes at the end).
# shellcheck shell=bash

log() { printf 'bench/%s: %s\n' "$NAME" "$*" >&2; }

# --- peers and tools -----------------------------------------------------------------------
need=()
command -v haproxy >/dev/null || need+=(haproxy)
command -v nginx >/dev/null || need+=(nginx-light)
command -v openssl >/dev/null || need+=(openssl)
command -v curl >/dev/null || need+=(curl)
command -v python3 >/dev/null || need+=(python3)
command -v ssh >/dev/null && command -v ssh-keygen >/dev/null || need+=(openssh-client)
[ -x /bin/busybox ] || need+=(busybox-static)   # the soak image's shell
if [ "${#need[@]}" -gt 0 ]; then
  log "installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
# Only the engine is needed (not scripts/setup's plugin toolchains, whose setup is not safe to
# run twice at once: bench/scale and bench/soak may run side by side).
docker info >/dev/null || { log "no Docker engine answers; scripts/setup installs one"; exit 1; }

# Tens of thousands of descriptors for the clients and the peers: root may raise the hard
# limit. Orca is started with a soft limit of 1024 under it, as systemd hands out
# (LimitNOFILE=1024:524288), and must raise its own (gateway/src/serve/nofile.rs); haproxy
# raises its own from maxconn, nginx from worker_rlimit_nofile.
NOFILE=${NOFILE:-1048576}
ulimit -Hn "$NOFILE" 2>/dev/null || NOFILE=$(ulimit -Hn)
ulimit -Sn "$NOFILE"
# A proxy holds two descriptors per connection: where the hard limit cannot be raised (no
# CAP_SYS_RESOURCE, as in a container), this is the most any of them can hold.
max_proxied=$(((NOFILE - 200) / 2))

work=$(mktemp -d "/tmp/orca-bench-$NAME.XXXXXX")
log "work directory: $work"

pids=()
# Stops a process this script started: TERM, up to 30 s (Orca stops its containers), then KILL.
stop() { # pid
  kill -TERM "$1" 2>/dev/null || return 0
  for _ in $(seq 1 300); do
    kill -0 "$1" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$1" 2>/dev/null
  wait "$1" 2>/dev/null
}
cleanup() {
  set +e
  for pid in "${pids[@]}"; do stop "$pid"; done
  [ -n "${orca_pid:-}" ] && stop "$orca_pid"
  # Whatever Orca or a baseline left behind: only containers this script's labels name.
  local left
  left=$(docker ps -aq --filter "label=orca.gateway.instance=$INSTANCE"
    docker ps -aq --filter "label=$INSTANCE.baseline")
  [ -n "$left" ] && docker rm -f $left >/dev/null
  # The images carry orca.* labels: left behind, they would show up in any other Orca's
  # catalogue on this engine.
  docker rmi -f "${IMAGES[@]}" >/dev/null 2>&1
}
trap cleanup EXIT

# --- build ---------------------------------------------------------------------------------
orca=$work/orca   # copies, so a concurrent build cannot swap a binary mid-run
load=$work/load
if [ -n "${ORCA_BIN:-}" ]; then
  built="ORCA_BIN=$ORCA_BIN"
else
  built="release build of commit $(git rev-parse --short HEAD)"
  git diff --quiet HEAD -- Cargo.toml Cargo.lock gateway sdk plugins wit ||
    built="$built with uncommitted changes"
fi
log "building orca and the load client (release)"
cargo build --release -q -p orca-gateway --bin orca -p orca-tests --bin load
target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
cp "${ORCA_BIN:-$target_dir/release/orca}" "$orca"
cp "$target_dir/release/load" "$load"

# The container's server (bench/https.d/upstream.rs: HTTP keep-alive and a WebSocket echo on
# /ws), static, for FROM-scratch images.
upstream_context() { # dir [busybox]: a build context; with busybox, a shell for SSH too
  mkdir -p "$1"
  rustc --edition 2021 -O -C strip=symbols -C target-feature=+crt-static \
    bench/https.d/upstream.rs -o "$1/upstream"
  if [ "${2:-}" = busybox ]; then
    cp /bin/busybox "$1/busybox"
    cat >"$1/Dockerfile" <<'EOF'
FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
COPY upstream /upstream
EXPOSE 80
CMD ["/upstream", "80"]
EOF
  else
    cat >"$1/Dockerfile" <<'EOF'
FROM scratch
COPY upstream /upstream
EXPOSE 80
CMD ["/upstream", "80"]
EOF
  fi
}

# A CA and a certificate it signed for the names given (ECDSA P-256), so the Rust client can
# trust the CA alone; tls.pem (chain and key) for haproxy. The names are spelled out: curl
# refuses a wildcard directly under a single-label name such as `*.localhost`.
make_certs() { # name...
  local san="DNS:localhost" n
  for n in "$@"; do san="$san,DNS:$n"; done
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -subj "/CN=orca-bench CA" -keyout "$work/ca.key" -out "$work/ca.crt" 2>/dev/null
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -subj "/CN=localhost" -keyout "$work/tls.key" -out "$work/tls.csr" 2>/dev/null
  printf 'subjectAltName=%s\nbasicConstraints=CA:FALSE\n' "$san" >"$work/ext"
  openssl x509 -req -in "$work/tls.csr" -CA "$work/ca.crt" -CAkey "$work/ca.key" \
    -CAcreateserial -days 2 -extfile "$work/ext" -out "$work/leaf.crt" 2>/dev/null
  cat "$work/leaf.crt" "$work/ca.crt" >"$work/tls.crt"
  cat "$work/tls.crt" "$work/tls.key" >"$work/tls.pem"
}

# Runs `orca serve` on $work/orca.toml with a soft open-file limit of 1024 (see above) and
# waits for it to run.
start_orca() {
  log "starting orca serve"
  (ulimit -Sn 1024 && RUST_LOG=info exec "$orca" serve --config "$work/orca.toml" --cleanup-on-exit) \
    2>"$work/orca.log" &
  orca_pid=$!
  for _ in $(seq 1 600); do
    grep -q "orca is running" "$work/orca.log" && break
    kill -0 "$orca_pid" 2>/dev/null || { cat "$work/orca.log" >&2; exit 1; }
    sleep 0.1
  done
  grep -q "orca is running" "$work/orca.log" || { log "orca did not start"; exit 1; }
}

# haproxy to ip:80 on 127.0.0.1:port, as bench/https configures it; WebSockets pass by default
# (`timeout tunnel` keeps idle ones open as long as the test holds them).
start_haproxy() { # ip port
  cat >"$work/haproxy.cfg" <<EOF
global
  nbthread 2
  maxconn $max_proxied
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
  timeout tunnel 1h
  timeout http-keep-alive 30s
frontend fe
  bind 127.0.0.1:$2 ssl crt $work/tls.pem alpn http/1.1
  option forwardfor
  http-request set-header X-Forwarded-Proto https
  http-request set-header X-Forwarded-Host %[req.hdr(host)]
  default_backend container
backend container
  http-reuse always
  server c $1:80
EOF
  haproxy -f "$work/haproxy.cfg" -db 2>"$work/haproxy.log" &
  haproxy_pid=$!
  pids+=("$haproxy_pid")
}

# nginx to ip:80 on 127.0.0.1:port, as bench/https configures it, plus the upgrade headers
# nginx needs to pass WebSockets, and a read timeout as long as the test holds them.
start_nginx() { # ip port
  mkdir -p "$work/nginx"
  cat >"$work/nginx.conf" <<EOF
worker_processes 2;
worker_rlimit_nofile 65536;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log warn;
events { worker_connections 30000; }
http {
  access_log off;
  client_body_temp_path $work/nginx/body;
  proxy_temp_path $work/nginx/proxy;
  keepalive_requests 100000000;
  map \$http_upgrade \$connection_upgrade { default upgrade; '' ''; }
  upstream container { server $1:80; keepalive 64; }
  server {
    listen 127.0.0.1:$2 ssl;
    ssl_certificate $work/tls.crt;
    ssl_certificate_key $work/tls.key;
    location / {
      proxy_pass http://container;
      proxy_http_version 1.1;
      proxy_read_timeout 1h;
      proxy_set_header Upgrade \$http_upgrade;
      proxy_set_header Connection \$connection_upgrade;
      proxy_set_header Host \$host;
      proxy_set_header X-Forwarded-For \$remote_addr;
      proxy_set_header X-Forwarded-Proto https;
      proxy_set_header X-Forwarded-Host \$host;
    }
  }
}
EOF
  nginx -c "$work/nginx.conf" -g 'daemon off;' 2>"$work/nginx/stderr.log" &
  nginx_pid=$!
  pids+=("$nginx_pid")
}

# The first request of a new user: launches (or finds) the user's container, held until it is
# ready; prints the session cookie it set.
first_cookie() { # host port
  local jar=$work/cookies.$1
  curl -s --cacert "$work/ca.crt" -o /dev/null -c "$jar" --resolve "$1:$2:127.0.0.1" "https://$1:$2/"
  awk '!/^#/ || /^#HttpOnly_/ { if (NF >= 7) c = $6 "=" $7 } END { print c }' "$jar"
}

# Waits until `url` answers through a peer (bounded).
wait_for() { # host port
  for _ in $(seq 1 100); do
    curl -s --cacert "$work/ca.crt" -o /dev/null --resolve "$1:$2:127.0.0.1" "https://$1:$2/" && return 0
    sleep 0.1
  done
  log "nothing answers on $1:$2"
  return 1
}

# RSS (KiB) and open descriptors, summed over the processes named.
rss_kib() { # pid...
  local total=0 pid v
  for pid in "$@"; do
    v=$(awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status" 2>/dev/null || echo 0)
    total=$((total + ${v:-0}))
  done
  echo "$total"
}
fds() { # pid...
  local total=0 pid
  for pid in "$@"; do total=$((total + $(ls "/proc/$pid/fd" 2>/dev/null | wc -l))); done
  echo "$total"
}
nginx_pids() { echo "$nginx_pid $(pgrep -P "$nginx_pid" | tr '\n' ' ')"; }

machine() {
  echo "# $(date -u +%FT%TZ) $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(free -g | awk '/^Mem:/ { print $2 }') GiB; $built"
  echo "# load average at the end: $(cut -d' ' -f1-3 /proc/loadavg); haproxy $(haproxy -v | head -n1 | cut -d' ' -f3), $(nginx -v 2>&1 | cut -d' ' -f3), Docker $(docker version -f '{{.Server.Version}}')"
}
