# Real servers on loopback for the tests, sourced by scripts/test.sh. Each start_* installs what it
# needs from Debian's packages, starts the server in $PSM_SERVICES_DIR on a free port of 127.0.0.1,
# exports the address for the tests, and registers its stop in stop_services.
# shellcheck shell=bash

PSM_SERVICES_DIR=${PSM_SERVICES_DIR:-$(mktemp -d /tmp/openpsm-services.XXXXXX)}
chmod 755 "$PSM_SERVICES_DIR"
_psm_stops=()

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

apt_install() {
    local missing=()
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    echo "installing ${missing[*]}"
    if [ -z "${_psm_apt_updated:-}" ]; then
        apt-get update -qq
        _psm_apt_updated=1
    fi
    # Packages must not start their system services (an sshd on every interface, a PostgreSQL on
    # 5432): the tests start their own, on loopback only.
    local guard=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d
        guard=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    [ -n "$guard" ] && rm -f /usr/sbin/policy-rc.d
    return 0
}

# PostgreSQL (Debian's), trust auth on loopback only: PSM_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:PORT
start_postgres() {
    apt_install postgresql
    local bin dir port
    bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
    dir="$PSM_SERVICES_DIR/pg"
    port=$(free_port)
    mkdir -p "$dir" && chown postgres: "$dir"
    su postgres -c "$bin/initdb -D $dir/data -U postgres --auth=trust -E UTF8 --locale=C.UTF-8" >/dev/null
    su postgres -c "$bin/pg_ctl -D $dir/data -l $dir/pg.log -o '-c listen_addresses=127.0.0.1 -p $port -k $dir -c max_connections=300' -w start" >/dev/null
    export PSM_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:$port"
    _psm_stops+=("su postgres -c '$bin/pg_ctl -D $dir/data -m fast -w stop' >/dev/null")
    echo "postgresql on 127.0.0.1:$port"
}

stop_services() {
    local stop
    for stop in "${_psm_stops[@]}"; do
        eval "$stop" || true
    done
    _psm_stops=()
    rm -rf "$PSM_SERVICES_DIR"
}

# Headless Chromium (Debian's) and playwright-core (npm, from web/package-lock.json).
ensure_browser() {
    apt_install chromium
    (cd web && npm ci --no-audit --no-fund --loglevel=error)
}

# OpenSSH's sshd on a free port of 127.0.0.1 with a test account (password and key), for the ssh
# plugin: PSM_TEST_SSHD_PORT, _USER, _PASSWORD, _KEY (private key file), _HOSTKEY (SHA256:...).
start_sshd() {
    apt_install openssh-server openssh-client
    local dir="$PSM_SERVICES_DIR/sshd" port="${1:-}" user="${2:-psmtest}" pass
    [ -n "$port" ] || port=$(free_port)
    id -u "$user" >/dev/null 2>&1 || useradd -m -s /bin/bash "$user"
    pass="Psm-$(head -c 18 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 16)-1"
    echo "$user:$pass" | chpasswd
    mkdir -p "$dir" /run/sshd
    ssh-keygen -q -t ed25519 -N '' -f "$dir/host_ed25519"
    ssh-keygen -q -t ed25519 -N '' -f "$dir/client_ed25519"
    install -d -m 700 -o "$user" -g "$user" "/home/$user/.ssh"
    install -m 600 -o "$user" -g "$user" "$dir/client_ed25519.pub" "/home/$user/.ssh/authorized_keys"
    cat > "$dir/sshd_config" <<CONF
Port $port
ListenAddress 127.0.0.1
HostKey $dir/host_ed25519
PidFile $dir/sshd.pid
PasswordAuthentication yes
KbdInteractiveAuthentication yes
PubkeyAuthentication yes
UsePAM yes
PermitRootLogin no
CONF
    /usr/sbin/sshd -f "$dir/sshd_config" -E "$dir/sshd.log"
    export PSM_TEST_SSHD_PORT=$port PSM_TEST_SSHD_USER=$user PSM_TEST_SSHD_PASSWORD=$pass
    export PSM_TEST_SSHD_KEY="$dir/client_ed25519"
    PSM_TEST_SSHD_HOSTKEY=$(ssh-keygen -lf "$dir/host_ed25519.pub" -E sha256 | awk '{print $2}')
    export PSM_TEST_SSHD_HOSTKEY
    _psm_stops+=("kill \$(cat $dir/sshd.pid) 2>/dev/null")
    echo "sshd on 127.0.0.1:$port"
}

# inetutils telnetd behind inetutils-inetd on a free port of 127.0.0.1, for the telnet plugin:
# PSM_TEST_TELNETD_PORT (log in with the sshd test account, PSM_TEST_SSHD_USER/_PASSWORD).
start_telnetd() {
    apt_install inetutils-telnetd inetutils-inetd
    local dir="$PSM_SERVICES_DIR/telnetd" port
    port=$(free_port)
    mkdir -p "$dir"
    echo "127.0.0.1:$port stream tcp nowait root /usr/sbin/telnetd telnetd" > "$dir/inetd.conf"
    inetutils-inetd -d --pidfile="$dir/inetd.pid" "$dir/inetd.conf" > "$dir/inetd.log" 2>&1 &
    local pid=$!
    for _ in $(seq 50); do (echo > "/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
    export PSM_TEST_TELNETD_PORT=$port
    _psm_stops+=("kill $pid 2>/dev/null")
    echo "telnetd on 127.0.0.1:$port"
}

# Samba as an Active Directory domain controller for EXAMPLE.TEST, on loopback only (LDAP 389,
# LDAPS 636, KDC 88: Samba's ports are fixed). LDAPS carries a certificate for 127.0.0.1 from a CA
# made here, so the tests verify it as production does. Exports PSM_TEST_AD_URL, PSM_TEST_AD_CA,
# PSM_TEST_AD_BIND_DN, PSM_TEST_AD_PASSWORD, PSM_TEST_AD_BASE.
start_samba_ad() {
    apt_install samba samba-ad-dc samba-ad-provision ldap-utils openssl
    local dir="$PSM_SERVICES_DIR/samba" pass='Adm1n-Pass!23' tls
    tls="$dir/tls"
    mkdir -p "$tls"
    (
        cd "$tls" || exit 1
        openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=openpsm test CA" \
            -keyout ca.key -out ca.pem 2>/dev/null
        openssl req -newkey rsa:2048 -nodes -subj "/CN=dc1.example.test" \
            -keyout key.pem -out req.csr 2>/dev/null
        printf 'subjectAltName=IP:127.0.0.1,DNS:dc1.example.test\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' > ext
        openssl x509 -req -in req.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
            -extfile ext -out cert.pem 2>/dev/null
        chmod 600 key.pem ca.key
    )
    samba-tool domain provision --use-rfc2307 --realm=EXAMPLE.TEST --domain=EXAMPLE \
        --server-role=dc --dns-backend=NONE --adminpass="$pass" --targetdir="$dir" \
        --host-name=dc1 --option="interfaces=lo" --option="bind interfaces only=yes" \
        --option="tls keyfile=$tls/key.pem" --option="tls certfile=$tls/cert.pem" \
        --option="tls cafile=$tls/ca.pem" >"$dir/provision.log" 2>&1 \
        || { cat "$dir/provision.log"; return 1; }
    samba -i -M single -s "$dir/etc/smb.conf" --option="log file=$dir/samba.log" \
        --option="pid directory=$dir/run" --option="server services=ldap cldap kdc" \
        >"$dir/samba.out" 2>&1 &
    local pid=$!
    _psm_stops+=("kill $pid; wait $pid 2>/dev/null")
    export PSM_TEST_AD_URL="ldaps://127.0.0.1:636" PSM_TEST_AD_CA="$tls/ca.pem"
    export PSM_TEST_AD_BIND_DN="CN=Administrator,CN=Users,DC=example,DC=test"
    export PSM_TEST_AD_PASSWORD="$pass" PSM_TEST_AD_BASE="DC=example,DC=test"
    local i
    for i in $(seq 1 100); do
        if LDAPTLS_CACERT="$tls/ca.pem" ldapsearch -H "$PSM_TEST_AD_URL" -x -D "$PSM_TEST_AD_BIND_DN" \
            -w "$pass" -b "$PSM_TEST_AD_BASE" -s base dn >/dev/null 2>&1; then
            echo "samba AD DC on 127.0.0.1:636 (LDAPS, $i tries)"
            return 0
        fi
        sleep 0.3
    done
    echo "samba AD DC did not answer on LDAPS"; tail -20 "$dir/samba.log" "$dir/samba.out"
    return 1
}

# Stops xrdp, then each session sesman forked (its Xorg, xterm, chansrv), then sesman.
_psm_stop_xrdp() {
    local xrdp=$1 sesman=$2 session
    kill "$xrdp" 2>/dev/null
    for session in $(pgrep -P "$sesman"); do
        pkill -P "$session" 2>/dev/null
        kill "$session" 2>/dev/null
    done
    kill "$sesman" 2>/dev/null
    wait "$xrdp" "$sesman" 2>/dev/null
    return 0
}

# xrdp (Debian's, Xorg backend) on a free port of 127.0.0.1 with an xterm as the desktop, for the
# rdp plugin: PSM_TEST_XRDP_PORT (log in with the sshd test account, PSM_TEST_SSHD_USER/_PASSWORD:
# run start_sshd first). TLS security (xrdp 0.9 has no NLA). Disconnected sessions are kept, so a
# later connection re-attaches to the same desktop (with KillDisconnected, a connection made within
# seconds of a disconnect re-attaches to a session sesman then kills under it); stop kills them.
# sesman's port is fixed (3350 on loopback), so one start_xrdp per machine at a time.
start_xrdp() {
    apt_install xrdp xorgxrdp xterm
    local dir="$PSM_SERVICES_DIR/xrdp" port user="${PSM_TEST_SSHD_USER:-psmtest}" home
    port=$(free_port)
    mkdir -p "$dir" /run/xrdp
    id -u "$user" >/dev/null 2>&1 || useradd -m -s /bin/bash "$user"
    home=$(getent passwd "$user" | cut -d: -f6)
    # The xterm selects into CLIPBOARD and pastes it with Shift+Insert: xrdp's chansrv bridges the
    # X CLIPBOARD and RDP's cliprdr channel (the clipboard tests).
    cat > "$home/startwm.sh" <<'EOF'
#!/bin/sh
exec xterm -geometry 80x24+0+0 -xrm 'XTerm*selectToClipboard: true' -xrm 'XTerm*VT100.translations: #override Shift <Key>Insert: insert-selection(CLIPBOARD)'
EOF
    chmod 755 "$home/startwm.sh" && chown "$user": "$home/startwm.sh"
    sed -e "s|^port=3389$|port=tcp://127.0.0.1:$port|" \
        -e "s|^LogFile=.*|LogFile=$dir/xrdp.log|" \
        -e "s|^EnableSyslog=.*|EnableSyslog=false|" \
        /etc/xrdp/xrdp.ini > "$dir/xrdp.ini"
    sed -e "s|^LogFile=.*|LogFile=$dir/sesman.log|" \
        -e "s|^EnableSyslog=.*|EnableSyslog=false|" \
        -e "s|^KillDisconnected=.*|KillDisconnected=false|" \
        /etc/xrdp/sesman.ini > "$dir/sesman.ini"
    xrdp-sesman -n -c "$dir/sesman.ini" > "$dir/sesman.out" 2>&1 &
    local sesman=$!
    xrdp -n -c "$dir/xrdp.ini" > "$dir/xrdp.out" 2>&1 &
    local xrdp=$!
    _psm_stops+=("_psm_stop_xrdp $xrdp $sesman")
    local i
    for i in $(seq 100); do
        if (echo > "/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            export PSM_TEST_XRDP_PORT=$port
            echo "xrdp on 127.0.0.1:$port"
            return 0
        fi
        sleep 0.1
    done
    echo "xrdp did not answer on 127.0.0.1:$port"; tail -20 "$dir/xrdp.out" "$dir/sesman.out"
    return 1
}
