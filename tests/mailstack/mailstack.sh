#!/usr/bin/env bash
# mailstack.sh - mailbot's private, loopback-only mail stack for tests and benchmarks.
#
#   mailstack.sh start DIR            create DIR (config, cert, users, Maildirs) and start all
#   mailstack.sh stop DIR             stop what was started for DIR (by PID file), nothing else
#   mailstack.sh status DIR           show what is running (exit 3 when something is down)
#   mailstack.sh env DIR              print shell exports describing the stack (eval-able)
#   mailstack.sh start-dovecot DIR    start Dovecot alone again (same config and ports)
#   mailstack.sh stop-dovecot DIR [--kill]  stop Dovecot alone (SMTP then answers 451);
#                                     --kill: SIGKILL at once, like a crash
#   mailstack.sh add-user DIR LOCAL.. add mailboxes LOCAL@DOMAIN while running (idempotent)
#
# Components, all on 127.0.0.1:
#   Dovecot IMAP   $MAILSTACK_IMAP_PORT   plaintext, LOGIN/PLAIN allowed without TLS
#   Dovecot IMAPS  $MAILSTACK_IMAPS_PORT  implicit TLS, self-signed cert DIR/ssl/cert.pem
#   Dovecot LMTP   unix socket DIR/run/lmtp
#   SMTP           $MAILSTACK_SMTP_PORT   aiosmtpd (smtpd.py), STARTTLS, AUTH PLAIN/LOGIN after TLS
#   SMTPS          $MAILSTACK_SMTPS_PORT  implicit TLS; both deliver into Dovecot through LMTP
#   OAuth2         $MAILSTACK_OAUTH_PORT  oauthd.py: token, device, authorize, introspection;
#                                         Dovecot and SMTP accept XOAUTH2/OAUTHBEARER tokens
#                                         it issued (checked by RFC 7662 introspection)
# A port variable that is unset or empty gets a free port, picked at start.  Everything
# chosen at start is saved in DIR/stack.env; the other commands read it from there.
#
# Other settings (start only): MAILSTACK_DOMAIN (example.test), MAILSTACK_PASSWORD (pw, for
# every user), MAILSTACK_USERS (owner alice bob carol dave erin), MAILSTACK_PYTHON (a Python
# with aiosmtpd; default the project's .venv, else python3), MAILSTACK_MAIL_USER (mail).
# Users are DIR/users.d/ADDRESS (a passwd-file each); mail lives in
# DIR/mail/DOMAIN/LOCAL/Maildir.  SMTP fault injection: see smtpd.py.
#
# As root, Dovecot's mail processes run as MAILSTACK_MAIL_USER (Dovecot refuses mail access
# as root) and DIR must be reachable by Dovecot's unprivileged users: every parent
# directory needs o+x (mktemp -d and pytest's tmp_path are 0700).  As a normal user,
# Dovecot runs rootless.  The system's dovecot service is never touched.
#
# Exit status: 0 ok, 1 error, 2 usage, 3 status: something down, 75 a port was taken.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PATH="$PATH:/usr/sbin:/sbin"   # Debian's dovecot is in /usr/sbin, often not in a user's PATH
EX_PORT_TAKEN=75
START_TIMEOUT_S=10        # bound for ports to accept after a start
STOP_TIMEOUT_S=10         # bound for processes to go after SIGTERM, before SIGKILL

die() { echo "mailstack: $*" >&2; exit 1; }
usage() { sed -n '2,11p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2; }

now_us() { echo "${EPOCHREALTIME//[!0-9]/}"; }   # wall clock in microseconds (bash 5)

# ---------------------------------------------------------------- process helpers

# pid_is_ours PID NEEDLE: PID is alive, not a zombie, and its command line contains NEEDLE
# (guards against a recycled PID from a stale PID file).
pid_is_ours() {
  local pid="$1" needle="$2"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  grep -qs '^State:[[:space:]]*[^Z]' "/proc/$pid/status" || return 1
  tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$needle"
}

port_open() {  # port_open PORT: something accepts on 127.0.0.1:PORT
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# wait_until TIMEOUT_S CMD...: poll CMD every 20 ms until it succeeds or time runs out
wait_until() {
  local deadline=$(( $(now_us) + $1 * 1000000 )); shift
  until "$@"; do
    [ "$(now_us)" -lt "$deadline" ] || return 1
    sleep 0.02
  done
}

ports_open() { local p; for p in "$@"; do port_open "$p" || return 1; done; }

# group_gone PGID: no live (non-zombie) process is left in process group PGID
group_gone() { [ -z "$(ps -o stat= -g "$1" 2>/dev/null | grep -v '^Z')" ]; }

pid_gone() { ! pid_is_ours "$1" "$2"; }   # pid_gone PID NEEDLE

# ---------------------------------------------------------------- settings

abspath_new() { mkdir -p "$1" && (cd "$1" && pwd); }

# check_reachable DIR: as root, Dovecot's unprivileged processes must be able to reach
# DIR, so every parent needs o+x (mktemp -d and pytest's tmp_path parents are 0700)
check_reachable() {
  [ "$(id -u)" = 0 ] || return 0
  local p="$1" mode
  while [ "$p" != / ]; do
    p="$(dirname "$p")"
    mode="$(stat -c %a "$p")"
    (( 8#$mode & 1 )) || die "$p (mode $mode) is not traversable by others; Dovecot's users cannot reach $1. Use a directory under /tmp."
  done
}
abspath_existing() { (cd "$1" 2>/dev/null && pwd) || die "no such directory: $1"; }

load_env() {  # load_env DIR: read the settings saved by start
  [ -s "$1/stack.env" ] || die "$1 holds no stack (run: mailstack.sh start $1)"
  # shellcheck disable=SC1091
  . "$1/stack.env"
}

# instance_of DIR: Dovecot titles its processes "dovecot-<instance_name>/<service>"
instance_of() { echo "mailstack-$(echo "$1" | md5sum | cut -c1-8)"; }

pick_free_ports() {  # pick_free_ports N: N distinct ports free on 127.0.0.1 right now
  "$PY" - "$1" <<'EOF'
import socket
import sys

socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
for s in socks:
    s.close()
EOF
}

# resolve_settings DIR: the settings for a start, from MAILSTACK_* in the environment
# (a start of an existing DIR keeps its cert, users and mail but picks ports anew)
resolve_settings() {
  local D="$1" free=() p
  DOMAIN="${MAILSTACK_DOMAIN:-example.test}"
  PASSWORD="${MAILSTACK_PASSWORD:-pw}"
  USERS="${MAILSTACK_USERS-owner alice bob carol dave erin}"
  MAIL_USER="${MAILSTACK_MAIL_USER:-mail}"
  if [ -n "${MAILSTACK_PYTHON:-}" ]; then PY="$MAILSTACK_PYTHON"
  elif [ -x "$HERE/../../.venv/bin/python" ]; then PY="$(cd "$HERE/../../.venv/bin" && pwd)/python"
  else PY=python3; fi
  [[ "$D" =~ ^[A-Za-z0-9/._+-]+$ ]] || die "directory path must be plain (letters, digits, /._+-): $D"
  [[ "$DOMAIN" =~ ^[a-z0-9.-]+$ ]] || die "bad MAILSTACK_DOMAIN: $DOMAIN"
  [[ "$PASSWORD" =~ ^[A-Za-z0-9._+=-]+$ ]] || die "MAILSTACK_PASSWORD must be plain (letters, digits, ._+=-)"
  mapfile -t free < <(pick_free_ports 5 | tr ' ' '\n') || die "$PY cannot pick free ports"
  [ "${#free[@]}" = 5 ] || die "$PY cannot pick free ports"
  IMAP_PORT="${MAILSTACK_IMAP_PORT:-${free[0]}}"
  IMAPS_PORT="${MAILSTACK_IMAPS_PORT:-${free[1]}}"
  SMTP_PORT="${MAILSTACK_SMTP_PORT:-${free[2]}}"
  SMTPS_PORT="${MAILSTACK_SMTPS_PORT:-${free[3]}}"
  OAUTH_PORT="${MAILSTACK_OAUTH_PORT:-${free[4]}}"
  for p in "$IMAP_PORT" "$IMAPS_PORT" "$SMTP_PORT" "$SMTPS_PORT" "$OAUTH_PORT"; do
    [[ "$p" =~ ^[0-9]+$ ]] || die "bad port: $p"
  done
}

save_env() {  # save_env DIR: the stack's description, sourced by the other commands
  local D="$1"
  cat > "$D/stack.env.tmp" <<EOF
export MAILSTACK_DIR=$D
export MAILSTACK_HOST=127.0.0.1
export MAILSTACK_IMAP_PORT=$IMAP_PORT
export MAILSTACK_IMAPS_PORT=$IMAPS_PORT
export MAILSTACK_SMTP_PORT=$SMTP_PORT
export MAILSTACK_SMTPS_PORT=$SMTPS_PORT
export MAILSTACK_OAUTH_PORT=$OAUTH_PORT
export MAILSTACK_OAUTH_URL=http://127.0.0.1:$OAUTH_PORT
export MAILSTACK_CAFILE=$D/ssl/cert.pem
export MAILSTACK_DOMAIN=$DOMAIN
export MAILSTACK_OWNER=owner@$DOMAIN
export MAILSTACK_PASSWORD=$PASSWORD
export MAILSTACK_USERS="$USERS"
export MAILSTACK_PYTHON=$PY
export MAILSTACK_MAIL_USER=$MAIL_USER
export MAILSTACK_DOVECOT_CONF=$D/dovecot.conf
export MAILSTACK_DOVEADM="doveadm -c $D/dovecot.conf"
EOF
  mv "$D/stack.env.tmp" "$D/stack.env"
}

# ---------------------------------------------------------------- files

mail_owner() {  # uid:gid that owns the mail files
  if [ "$(id -u)" = 0 ]; then
    echo "$(id -u "$MAIL_USER"):$(id -g "$MAIL_USER")"
  else
    echo "$(id -u):$(id -g)"
  fi
}

make_cert() {  # self-signed EC certificate for 127.0.0.1/localhost (made once per DIR)
  local D="$1"
  [ -s "$D/ssl/cert.pem" ] && return 0
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 3650 \
      -sha256 -subj "/CN=mailstack.$DOMAIN" \
      -addext "subjectAltName=DNS:localhost,DNS:mailstack.$DOMAIN,IP:127.0.0.1" \
      -addext "basicConstraints=critical,CA:TRUE" \
      -addext "keyUsage=critical,digitalSignature,keyCertSign" \
      -addext "extendedKeyUsage=serverAuth" \
      -keyout "$D/ssl/key.pem" -out "$D/ssl/cert.pem" >"$D/log/openssl.log" 2>&1 \
    || { cat "$D/log/openssl.log" >&2; die "openssl could not make a certificate"; }
  chmod 600 "$D/ssl/key.pem"
  chmod 644 "$D/ssl/cert.pem"
}

# add_users DIR LOCAL...: a passwd-file line per user in DIR/users.d/ADDRESS, and a Maildir.
# One file per user because Dovecot checks a passwd-file for changes at most once a second:
# a user appended to a shared file within a second of a lookup stays unknown until the
# next second, while a new file is read at its first lookup.  Written to a temp file and
# renamed, so neither Dovecot nor smtpd.py ever sees half a line.  Idempotent.
add_users() {
  local D="$1" owner u addr; shift
  owner="$(mail_owner)"
  mkdir -p "$D/users.d"
  for u in "$@"; do
    u="${u,,}"
    [[ "$u" =~ ^[a-z0-9][a-z0-9._-]*$ ]] || die "bad user name: $u (use a-z 0-9 . _ -)"
    addr="$u@$DOMAIN"
    if [ ! -d "$D/mail/$DOMAIN/$u/Maildir/cur" ]; then
      mkdir -p "$D/mail/$DOMAIN/$u/Maildir"/{cur,new,tmp}
      chown -R "$owner" "$D/mail/$DOMAIN/$u"
    fi
    [ -s "$D/users.d/$addr" ] && continue
    # user:{PLAIN}password:uid:gid:gecos:home:shell:extra.  uid/gid stay empty (passwd-file
    # rejects uid 0); mail_uid/mail_gid in dovecot.conf supply them.
    echo "$addr:{PLAIN}$PASSWORD::::$D/mail/$DOMAIN/$u::" > "$D/users.d/.$addr.tmp"
    chmod 644 "$D/users.d/.$addr.tmp"
    mv "$D/users.d/.$addr.tmp" "$D/users.d/$addr"
  done
}

write_config() {
  local D="$1" owner uid gid users_block
  owner="$(mail_owner)"; uid="${owner%%:*}"; gid="${owner##*:}"
  if [ "$(id -u)" = 0 ]; then
    id dovecot >/dev/null 2>&1 && id dovenull >/dev/null 2>&1 \
      || die "users dovecot/dovenull missing (apt-get install -y dovecot-core)"
    # privileged master; login and internal processes unprivileged; mail as $MAIL_USER
    users_block="default_internal_user = dovecot
default_login_user = dovenull
first_valid_uid = $uid
last_valid_uid = $uid
first_valid_gid = $gid
last_valid_gid = $gid
mail_uid = $uid
mail_gid = $gid"
  else
    # rootless: every process runs as the calling user, so no chroot
    users_block="default_internal_user = $(id -un)
default_internal_group = $(id -gn)
default_login_user = $(id -un)
first_valid_uid = $uid
last_valid_uid = $uid
first_valid_gid = $gid
last_valid_gid = $gid
mail_uid = $uid
mail_gid = $gid
service anvil {
  chroot =
}
service imap-login {
  chroot =
}"
  fi

  cat > "$D/dovecot.conf.tmp" <<EOF
# Generated by mailstack.sh: a private loopback Dovecot for tests. Not for production.
instance_name = $(instance_of "$D")
base_dir = $D/run
state_dir = $D/state
protocols = imap lmtp
listen = 127.0.0.1
log_path = $D/log/dovecot.log
info_log_path = $D/log/dovecot-info.log
debug_log_path = $D/log/dovecot-debug.log
$users_block

ssl = yes
ssl_cert = <$D/ssl/cert.pem
ssl_key = <$D/ssl/key.pem
ssl_min_protocol = TLSv1.2

disable_plaintext_auth = no
auth_mechanisms = plain login xoauth2 oauthbearer
auth_username_format = %Lu
# No auth cache (users come and go during a run), no 2 s delay after a wrong password, and
# no anvil penalty either (else logins from 127.0.0.1 wait 2-15 s after one failure).
auth_cache_size = 0
auth_failure_delay = 0
# OAuth2 tokens (XOAUTH2, OAUTHBEARER) are checked against oauthd.py's introspection
# endpoint; passwords (PLAIN, LOGIN) against the passwd-files.  Each passdb serves only
# its own mechanisms, so a password is never taken for a token or the other way round.
passdb {
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = $D/dovecot-oauth2.conf.ext
}
passdb {
  driver = passwd-file
  mechanisms = plain login
  args = scheme=PLAIN username_format=%Lu $D/users.d/%Lu
}
userdb {
  driver = passwd-file
  args = username_format=%Lu $D/users.d/%Lu
}

mail_location = maildir:~/Maildir
mail_fsync = never
mail_max_userip_connections = 200
mailbox_idle_check_interval = 1 secs
postmaster_address = postmaster@$DOMAIN
hostname = mailstack.$DOMAIN
recipient_delimiter = +

namespace inbox {
  inbox = yes
  separator = /
  mailbox Sent {
    special_use = \\Sent
    auto = subscribe
  }
  mailbox Drafts {
    special_use = \\Drafts
    auto = subscribe
  }
  mailbox Trash {
    special_use = \\Trash
    auto = subscribe
  }
  mailbox Junk {
    special_use = \\Junk
    auto = subscribe
  }
}

service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = $IMAP_PORT
  }
  inet_listener imaps {
    address = 127.0.0.1
    port = $IMAPS_PORT
    ssl = yes
  }
  process_min_avail = 1
}
service lmtp {
  unix_listener lmtp {
    mode = 0600
  }
}
service imap {
  process_limit = 256
}
service anvil {
  unix_listener anvil-auth-penalty {
    mode = 0
  }
}
EOF
  mv "$D/dovecot.conf.tmp" "$D/dovecot.conf"
  cat > "$D/dovecot-oauth2.conf.ext" <<EOF
# Generated by mailstack.sh: tokens are checked by RFC 7662 introspection at oauthd.py
introspection_mode = post
introspection_url = http://127.0.0.1:$OAUTH_PORT/introspect
username_attribute = username
active_attribute = active
active_value = true
timeout_msecs = 5000
EOF
  chmod 644 "$D/dovecot-oauth2.conf.ext"
}

# ---------------------------------------------------------------- Dovecot

dovecot_running() {
  local D="$1"
  [ -s "$D/run/master.pid" ] && pid_is_ours "$(cat "$D/run/master.pid")" "$D/dovecot.conf"
}

start_dovecot() {  # start_dovecot DIR: start the master and wait until IMAP/IMAPS accept
  local D="$1" p
  dovecot_running "$D" && die "Dovecot already running for $D (pid $(cat "$D/run/master.pid"))"
  rm -f "$D/run/master.pid"   # stale: Dovecot would refuse if its PID now names another process
  for p in "$IMAP_PORT" "$IMAPS_PORT"; do
    port_open "$p" && { echo "mailstack: port 127.0.0.1:$p is taken" >&2; exit $EX_PORT_TAKEN; }
  done
  if ! dovecot -c "$D/dovecot.conf" </dev/null >"$D/log/dovecot-start.log" 2>&1; then
    cat "$D/log/dovecot-start.log" >&2
    tail -5 "$D/log/dovecot.log" >&2 2>/dev/null || true
    grep -qs 'Address already in use' "$D/log/dovecot-start.log" "$D/log/dovecot.log" \
      && exit $EX_PORT_TAKEN
    die "dovecot failed to start (config $D/dovecot.conf)"
  fi
  if ! wait_until "$START_TIMEOUT_S" ports_open "$IMAP_PORT" "$IMAPS_PORT"; then
    tail -20 "$D/log/dovecot.log" >&2 || true
    stop_dovecot "$D"
    die "Dovecot did not accept on $IMAP_PORT/$IMAPS_PORT within $START_TIMEOUT_S s"
  fi
}

# stop_dovecot DIR [--kill]: graceful by default: SIGTERM to the master, which tells clients
# "BYE Server shutting down", stops its services and exits (after a fixed 1 s pause of its
# own, waiting for its log process).  Processes still serving a client (IDLE) and the stats
# process outlive the master by up to 10 s, so then SIGTERM, and at last SIGKILL, what is
# left of the master's process group (the master leads it; a group's id is not reused
# while a member lives).  --kill: SIGKILL the whole group at once, like a crash (clients
# get no BYE, just a closed connection).
stop_dovecot() {
  local D="$1" mode="${2:-}" pid pgid
  if ! [ -s "$D/run/master.pid" ]; then return 0; fi
  pid="$(cat "$D/run/master.pid")"
  if ! pid_is_ours "$pid" "$D/dovecot.conf"; then
    echo "mailstack: stale Dovecot pid file ($pid), removing" >&2
    rm -f "$D/run/master.pid"; return 0
  fi
  pgid="$(ps -o pgid= -p "$pid" | tr -d ' ')"
  if [ "$pgid" != "$pid" ]; then       # not a group leader: only the master is ours to end
    kill -TERM "$pid" 2>/dev/null || true
    wait_until "$STOP_TIMEOUT_S" pid_gone "$pid" "$D/dovecot.conf" || kill -KILL "$pid" 2>/dev/null || true
    rm -f "$D/run/master.pid"; return 0
  fi
  if [ "$mode" = --kill ]; then
    kill -KILL -- "-$pgid" 2>/dev/null || true
  else
    kill -TERM "$pid" 2>/dev/null || true
    wait_until "$STOP_TIMEOUT_S" pid_gone "$pid" "$D/dovecot.conf" \
      || echo "mailstack: Dovecot master $pid ignored SIGTERM for $STOP_TIMEOUT_S s" >&2
    kill -TERM -- "-$pgid" 2>/dev/null || true
    wait_until 1 group_gone "$pgid" || kill -KILL -- "-$pgid" 2>/dev/null || true
  fi
  wait_until 2 group_gone "$pgid" || echo "mailstack: Dovecot group $pgid survived SIGKILL" >&2
  rm -f "$D/run/master.pid"
}

# ---------------------------------------------------------------- SMTP server

pidfile_or_dead() { [ -s "$1" ] || ! kill -0 "$2" 2>/dev/null; }  # PIDFILE PID

smtpd_running() {
  local D="$1"
  [ -s "$D/run/smtpd.pid" ] && pid_is_ours "$(cat "$D/run/smtpd.pid")" "--dir $D "
}

start_smtpd() {
  local D="$1" pid p
  for p in "$SMTP_PORT" "$SMTPS_PORT"; do
    port_open "$p" && { echo "mailstack: port 127.0.0.1:$p is taken" >&2; return $EX_PORT_TAKEN; }
  done
  rm -f "$D/run/smtpd.pid"
  # setsid: its own session, so a terminal's ^C does not reach it. It writes the PID file
  # itself once both ports listen.
  setsid "$PY" "$HERE/smtpd.py" --dir "$D" --domain "$DOMAIN" \
      --port "$SMTP_PORT" --tls-port "$SMTPS_PORT" --pidfile "$D/run/smtpd.pid" \
      --oauth-url "http://127.0.0.1:$OAUTH_PORT/introspect" \
      </dev/null >>"$D/log/smtpd.log" 2>&1 &
  pid=$!
  # wait for its PID file, or for it to die (then there is no point in waiting on)
  wait_until "$START_TIMEOUT_S" pidfile_or_dead "$D/run/smtpd.pid" "$pid" || true
  if ! [ -s "$D/run/smtpd.pid" ]; then
    tail -20 "$D/log/smtpd.log" >&2 || true
    kill -TERM "$pid" 2>/dev/null || true
    grep -qs 'Address already in use' "$D/log/smtpd.log" && return $EX_PORT_TAKEN
    echo "mailstack: SMTP server did not come up (log $D/log/smtpd.log)" >&2
    return 1
  fi
}

stop_smtpd() {
  local D="$1" pid
  [ -s "$D/run/smtpd.pid" ] || return 0
  pid="$(cat "$D/run/smtpd.pid")"
  if pid_is_ours "$pid" "--dir $D "; then
    kill -TERM "$pid" 2>/dev/null || true
    if ! wait_until "$STOP_TIMEOUT_S" pid_gone "$pid" "--dir $D "; then
      echo "mailstack: smtpd (pid $pid) ignored SIGTERM, SIGKILL" >&2
      kill -KILL "$pid" 2>/dev/null || true
    fi
  else
    echo "mailstack: stale smtpd pid file ($pid), removing" >&2
  fi
  rm -f "$D/run/smtpd.pid"
}

# ---------------------------------------------------------------- OAuth2 server

oauthd_running() {
  local D="$1"
  [ -s "$D/run/oauthd.pid" ] && pid_is_ours "$(cat "$D/run/oauthd.pid")" "--pidfile $D/run/oauthd.pid"
}

start_oauthd() {  # start before Dovecot and smtpd: both ask it about tokens
  local D="$1" pid
  port_open "$OAUTH_PORT" && { echo "mailstack: port 127.0.0.1:$OAUTH_PORT is taken" >&2; return $EX_PORT_TAKEN; }
  rm -f "$D/run/oauthd.pid"
  setsid "$PY" "$HERE/oauthd.py" --port "$OAUTH_PORT" --pidfile "$D/run/oauthd.pid" \
      </dev/null >>"$D/log/oauthd.log" 2>&1 &
  pid=$!
  wait_until "$START_TIMEOUT_S" pidfile_or_dead "$D/run/oauthd.pid" "$pid" || true
  if ! [ -s "$D/run/oauthd.pid" ]; then
    tail -20 "$D/log/oauthd.log" >&2 || true
    kill -TERM "$pid" 2>/dev/null || true
    grep -qs 'Address already in use' "$D/log/oauthd.log" && return $EX_PORT_TAKEN
    echo "mailstack: OAuth2 server did not come up (log $D/log/oauthd.log)" >&2
    return 1
  fi
}

stop_oauthd() {
  local D="$1" pid
  [ -s "$D/run/oauthd.pid" ] || return 0
  pid="$(cat "$D/run/oauthd.pid")"
  if pid_is_ours "$pid" "--pidfile $D/run/oauthd.pid"; then
    kill -TERM "$pid" 2>/dev/null || true
    if ! wait_until "$STOP_TIMEOUT_S" pid_gone "$pid" "--pidfile $D/run/oauthd.pid"; then
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  rm -f "$D/run/oauthd.pid"
}

# ---------------------------------------------------------------- commands

cmd_start() {
  local D rc=0; D="$(abspath_new "$1")"
  command -v dovecot >/dev/null && command -v doveadm >/dev/null \
    || die "dovecot is not installed: apt-get install -y dovecot-imapd dovecot-lmtpd"
  [ -x /usr/lib/dovecot/lmtp ] || die "Dovecot LMTP is not installed: apt-get install -y dovecot-lmtpd"
  [ -x /usr/lib/dovecot/imap ] || die "Dovecot IMAP is not installed: apt-get install -y dovecot-imapd"
  command -v openssl >/dev/null || die "openssl is not installed"
  dovecot_running "$D" && die "already running for $D; stop it first"
  smtpd_running "$D" && die "smtpd already running for $D; stop it first"
  oauthd_running "$D" && die "oauthd already running for $D; stop it first"
  resolve_settings "$D"
  check_reachable "$D"
  "$PY" -c 'import aiosmtpd' 2>/dev/null || die "$PY cannot import aiosmtpd (set MAILSTACK_PYTHON)"
  [ "$(id -u)" != 0 ] || id "$MAIL_USER" >/dev/null 2>&1 || die "no user $MAIL_USER"

  mkdir -p "$D"/{run,state,log,ssl,mail}
  chmod 755 "$D" "$D/run" "$D/log" "$D/mail"
  mkdir -p -m 755 "$D/mail/$DOMAIN"
  chown "$(mail_owner)" "$D/mail" "$D/mail/$DOMAIN"
  save_env "$D"
  make_cert "$D"
  write_config "$D"
  # shellcheck disable=SC2086
  add_users "$D" $USERS

  start_oauthd "$D" || exit $?
  OAUTHD_DIR="$D"
  trap 'stop_oauthd "$OAUTHD_DIR"' EXIT   # start_dovecot may die: leave no oauthd behind
  start_dovecot "$D"
  start_smtpd "$D" || rc=$?
  if [ "$rc" != 0 ]; then stop_dovecot "$D"; exit "$rc"; fi
  trap - EXIT
  cat "$D/stack.env"
}

cmd_stop() {
  local D; D="$(abspath_existing "$1")"
  stop_smtpd "$D"
  stop_dovecot "$D"
  stop_oauthd "$D"
}

cmd_status() {
  local D rc=0; D="$(abspath_existing "$1")"
  if dovecot_running "$D"; then echo "dovecot: running (pid $(cat "$D/run/master.pid"))"
  else echo "dovecot: stopped"; rc=3; fi
  if smtpd_running "$D"; then echo "smtpd:   running (pid $(cat "$D/run/smtpd.pid"))"
  else echo "smtpd:   stopped"; rc=3; fi
  if oauthd_running "$D"; then echo "oauthd:  running (pid $(cat "$D/run/oauthd.pid"))"
  else echo "oauthd:  stopped"; rc=3; fi
  return $rc
}

[ $# -ge 2 ] || usage
case "$1" in
  start)          cmd_start "$2" ;;
  stop)           cmd_stop "$2" ;;
  status)         cmd_status "$2" ;;
  env)            D="$(abspath_existing "$2")"; load_env "$D"; cat "$D/stack.env" ;;
  start-dovecot)  D="$(abspath_existing "$2")"; load_env "$D"
                  IMAP_PORT=$MAILSTACK_IMAP_PORT IMAPS_PORT=$MAILSTACK_IMAPS_PORT
                  start_dovecot "$D" ;;
  stop-dovecot)   D="$(abspath_existing "$2")"; stop_dovecot "$D" "${3:-}" ;;
  add-user)       D="$(abspath_existing "$2")"; load_env "$D"; shift 2
                  [ $# -ge 1 ] || usage
                  DOMAIN=$MAILSTACK_DOMAIN PASSWORD=$MAILSTACK_PASSWORD
                  MAIL_USER=$MAILSTACK_MAIL_USER
                  add_users "$D" "$@"
                  for u in "$@"; do echo "${u,,}@$DOMAIN"; done ;;
  *) usage ;;
esac
