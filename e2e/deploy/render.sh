#!/usr/bin/env bash
# Derives the CI variant of a reverse-proxy recipe in deploy/ and writes it,
# with what the proxy needs to run unprivileged, into DIR:
#
#   render.sh caddy DIR LISTEN_PORT UPSTREAM_PORT
#   render.sh nginx DIR LISTEN_PORT UPSTREAM_PORT REDIRECT_PORT
#   render.sh nginx-tls DIR      (the production recipe for `nginx -t`, below)
#
# The variant is the recipe with only these changes, each made by one sed
# expression that must match exactly as often as stated, so a recipe that
# changes shape fails here instead of being tested half-rewritten:
#   caddy: the site address `mcp.example.com` becomes http://127.0.0.1:LISTEN_PORT
#          (plain HTTP, so no certificate is fetched); the upstream port
#          becomes UPSTREAM_PORT; a global options block is put in front
#          (admin API off, certificate storage in DIR; the caller points
#          HOME and XDG_CONFIG_HOME/XDG_DATA_HOME into DIR too).
#   nginx: `listen 443 ssl http2` becomes 127.0.0.1:LISTEN_PORT, `listen 80`
#          becomes 127.0.0.1:REDIRECT_PORT, the [::] listens and the ssl_*
#          lines go, the upstream port becomes UPSTREAM_PORT; the file is
#          included from a main nginx.conf that keeps pid, logs and temp files
#          in DIR and runs in the foreground.
# Prints nothing on success; the proxy is started by the caller (see run_args).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"

die() {
  echo "render.sh: $*" >&2
  exit 1
}

# substitute FILE COUNT SED_ADDRESS SED_COMMAND: applies `SED_ADDRESS SED_COMMAND`
# to FILE after checking that SED_ADDRESS matches exactly COUNT lines
# (COUNT "+" means at least one).
substitute() {
  local file="$1" count="$2" address="$3" command="$4" found
  found="$(sed -n "${address}p" "$file" | wc -l)"
  if [[ "$count" == "+" ]]; then
    [[ "$found" -ge 1 ]] || die "$(basename "$file"): no line matches ${address}"
  else
    [[ "$found" -eq "$count" ]] ||
      die "$(basename "$file"): ${address} matches ${found} lines, expected ${count}"
  fi
  sed -i "${address}${command}" "$file"
}

[[ $# -ge 2 ]] || die "usage: render.sh caddy|nginx|nginx-tls DIR [LISTEN_PORT UPSTREAM_PORT [REDIRECT_PORT]]"
kind="$1" dir="$2" listen="${3:-}" upstream="${4:-}"
[[ "$kind" == nginx-tls || -n "$upstream" ]] || die "$kind needs LISTEN_PORT and UPSTREAM_PORT"
mkdir -p "$dir"

case "$kind" in
caddy)
  site="$dir/site.caddy"
  cp "$repo/deploy/caddy/Caddyfile" "$site"
  substitute "$site" 1 '/^mcp\.example\.com {$/' "s|^mcp\.example\.com {|http://127.0.0.1:${listen} {|"
  substitute "$site" 1 '/^\treverse_proxy 127\.0\.0\.1:8080 {$/' "s|127\.0\.0\.1:8080|127.0.0.1:${upstream}|"
  mkdir -p "$dir/data" "$dir/config"
  {
    printf '{\n\tadmin off\n\tstorage file_system %s\n}\n\n' "$dir/data"
    cat "$site"
  } >"$dir/Caddyfile"
  ;;
nginx)
  [[ $# -eq 5 ]] || die "nginx needs REDIRECT_PORT"
  redirect="$5"
  site="$dir/fjmcp-broker.conf"
  cp "$repo/deploy/nginx/fjmcp-broker.conf" "$site"
  substitute "$site" 1 '/^    listen 443 ssl http2;$/' "s|listen 443 ssl http2;|listen 127.0.0.1:${listen};|"
  substitute "$site" 1 '/^    listen \[::\]:443 ssl http2;$/' d
  substitute "$site" 1 '/^    listen 80;$/' "s|listen 80;|listen 127.0.0.1:${redirect};|"
  substitute "$site" 1 '/^    listen \[::\]:80;$/' d
  substitute "$site" + '/^    ssl_/' d
  substitute "$site" 1 '/^    server 127\.0\.0\.1:8080;$/' "s|127\.0\.0\.1:8080|127.0.0.1:${upstream}|"
  for temp in client_body proxy fastcgi uwsgi scgi; do mkdir -p "$dir/$temp"; done
  # As root the workers would switch to an unprivileged user that cannot
  # reach DIR; as anyone else nginx ignores `user` (with a notice).
  cat >"$dir/nginx.conf" <<EOF
user $(id -un) $(id -gn);
daemon off;
worker_processes 1;
pid $dir/nginx.pid;
error_log $dir/error.log info;
events { worker_connections 256; }
http {
    access_log $dir/access.log;
    client_body_temp_path $dir/client_body;
    proxy_temp_path $dir/proxy;
    fastcgi_temp_path $dir/fastcgi;
    uwsgi_temp_path $dir/uwsgi;
    scgi_temp_path $dir/scgi;
    include $site;
}
EOF
  ;;
nginx-tls)
  # The production recipe for `nginx -t`: only the certificate paths move, to a
  # throwaway self-signed pair in DIR (nginx -t loads them; it binds nothing).
  site="$dir/fjmcp-broker.conf"
  cp "$repo/deploy/nginx/fjmcp-broker.conf" "$site"
  substitute "$site" 2 '\|^    ssl_certificate\(_key\)\{0,1\} */etc/letsencrypt/live/mcp\.example\.com/|' "s|/etc/letsencrypt/live/mcp\.example\.com/|$dir/tls/|"
  mkdir -p "$dir/tls"
  openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=mcp.example.com \
    -keyout "$dir/tls/privkey.pem" -out "$dir/tls/fullchain.pem" 2>/dev/null ||
    die "openssl could not make a test certificate"
  cat >"$dir/nginx.conf" <<EOF
pid $dir/nginx.pid;
error_log $dir/error.log;
events {}
http {
    include $site;
}
EOF
  ;;
*)
  die "unknown proxy $kind (caddy, nginx or nginx-tls)"
  ;;
esac
