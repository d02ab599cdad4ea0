#!/usr/bin/env bash
# Installs cmp-agent on this host: the binary, /etc/cmp and /var/lib/cmp-agent (0700), an
# example configuration when there is none, and the systemd unit (enabled, not started: enrol
# first). Running it again upgrades the binary and the unit and keeps the configuration.
#
#   sudo deploy/install-agent.sh [path/to/cmp-agent] [--server https://cmp.example:3000]
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
binary="${here}/../target/release/cmp-agent"
server="https://cmp.example:3000"
while [ $# -gt 0 ]; do
    case "$1" in
        --server) server="$2"; shift 2 ;;
        -h|--help) sed -n '2,7p' "$0"; exit 0 ;;
        *) binary="$1"; shift ;;
    esac
done

if [ "$(id -u)" -ne 0 ]; then
    echo "install-agent.sh: run as root" >&2
    exit 1
fi
if [ ! -x "$binary" ]; then
    echo "install-agent.sh: no executable at $binary (cargo build --release -p cmp-agent)" >&2
    exit 1
fi

install -m 0755 "$binary" /usr/local/bin/cmp-agent.new
mv -f /usr/local/bin/cmp-agent.new /usr/local/bin/cmp-agent
install -d -m 0700 /etc/cmp /var/lib/cmp-agent

config=/etc/cmp/agent.toml
if [ ! -e "$config" ]; then
    umask 077
    cat > "$config" <<CONFIG
# cmp-agent's configuration (cmp-agent check-config --config $config).
server = "$server"
# The CA certificate(s) of the server's TLS certificate, when not a public CA.
# ca_file = "/etc/cmp/server-ca.pem"
state_dir = "/var/lib/cmp-agent"

# One table per place a certificate is installed; the server names the target, never a path.
# Add each target's directory to ReadWritePaths (systemctl edit cmp-agent).
# [targets.web]
# kind = "nginx"
# cert = "/etc/nginx/tls/web.crt"
# key = "/etc/nginx/tls/web.key"
# test = ["nginx", "-t"]
# reload = ["systemctl", "reload", "nginx"]
# verify = { address = "127.0.0.1:443", sni = "web.example.com" }
CONFIG
    echo "wrote an example $config: edit it"
else
    echo "kept $config"
fi

if command -v systemctl > /dev/null && [ -d /run/systemd/system ]; then
    install -m 0644 "${here}/systemd/cmp-agent.service" /etc/systemd/system/cmp-agent.service
    systemctl daemon-reload
    systemctl enable cmp-agent.service
    if systemctl is-active --quiet cmp-agent.service; then
        systemctl restart cmp-agent.service
        echo "restarted cmp-agent"
    fi
else
    echo "no systemd here: the unit was not installed (run: cmp-agent run --config $config)"
fi

cat <<NEXT
next:
  cmp-agent check-config --config $config
  cmp-agent enroll --config $config --token cmp_boot_...   (once)
  systemctl start cmp-agent && cmp-agent status --config $config
NEXT
