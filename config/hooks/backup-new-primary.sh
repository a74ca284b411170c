#!/usr/bin/env bash
# pgwarden hook: take a base backup of the new primary after every change of the primary.
#
# A promoted replica starts a new timeline; backups taken from the old primary do not cover it,
# so the first thing to want after a failover is a fresh base backup of the new primary.
#
# Configure it on on_primary_change (a followed failover, pgwarden's own promotion or a planned
# switchover; post_switchover and on_promote set the same variables), for example:
#
#   hooks:
#     on_primary_change:
#       - command: [/etc/pgwarden/hooks/backup-new-primary.sh]
#         timeout: 1h
#         env: { BACKUP_DIR: /var/backups/pgwarden, KEEP: "3", PGUSER: replicator }
#
# Environment:
#   PGWARDEN_NEW_PRIMARY_HOST/_PORT/_NAME  set by pgwarden: the server to back up (required)
#   BACKUP_DIR   where backups go (required); each one is BACKUP_DIR/<UTC timestamp>
#   KEEP         how many complete backups to keep, newest first (default 3)
#   PGUSER       role to connect as (default postgres); it needs the REPLICATION attribute and a
#                `replication` line in pg_hba.conf. A password comes from PGPASSWORD or PGPASSFILE
#                (~/.pgpass of the user pgwarden runs as); the script never prompts.
#   PG_BINDIR    directory holding pg_basebackup (default: PATH, else the newest
#                /usr/lib/postgresql/*/bin)
#
# A backup is written to BACKUP_DIR/<timestamp>.partial and renamed only once pg_basebackup has
# succeeded, so a directory without .partial is always a complete backup (with the WAL it needs,
# -X stream). On failure or when pgwarden kills it at its timeout (SIGTERM), the .partial
# directory is removed. Files belong to the user pgwarden runs as (root or not); the directories
# are private (umask 077) because a base backup holds every row and the pg_authid passwords.
# Everything the script does is logged on stdout (pgwarden logs it); errors go to stderr, and
# the exit status is non-zero on any failure.
set -euo pipefail
umask 077

log() { printf '%s backup-new-primary: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*"; }
fail() { printf 'backup-new-primary: %s\n' "$*" >&2; exit 1; }

host=${PGWARDEN_NEW_PRIMARY_HOST:?PGWARDEN_NEW_PRIMARY_HOST is not set: run this as a pgwarden on_primary_change hook}
port=${PGWARDEN_NEW_PRIMARY_PORT:?PGWARDEN_NEW_PRIMARY_PORT is not set: run this as a pgwarden on_primary_change hook}
name=${PGWARDEN_NEW_PRIMARY_NAME:-$host:$port}
backup_dir=${BACKUP_DIR:?BACKUP_DIR is not set: add it to the hook env in the pgwarden configuration}
keep=${KEEP:-3}
user=${PGUSER:-postgres}

# KEEP=0 would delete the backup just taken; anything but a positive integer is a mistake.
[[ $keep =~ ^[1-9][0-9]*$ ]] || fail "KEEP must be a positive integer, got '$keep'"

# pg_basebackup: PG_BINDIR if given, else PATH (on Debian, pg_wrapper picks the newest
# version), else the newest /usr/lib/postgresql/<version>/bin.
find_pg_basebackup() {
  if [[ -n ${PG_BINDIR:-} ]]; then
    [[ -x $PG_BINDIR/pg_basebackup ]] || fail "PG_BINDIR=$PG_BINDIR has no executable pg_basebackup"
    printf '%s\n' "$PG_BINDIR/pg_basebackup"
    return
  fi
  if command -v pg_basebackup >/dev/null 2>&1; then
    command -v pg_basebackup
    return
  fi
  local newest
  newest=$(printf '%s\n' /usr/lib/postgresql/*/bin/pg_basebackup | grep -v '\*' | sort -V | tail -n 1 || true)
  [[ -n $newest && -x $newest ]] || fail "pg_basebackup not found in PATH or /usr/lib/postgresql/*/bin; set PG_BINDIR"
  printf '%s\n' "$newest"
}
pg_basebackup=$(find_pg_basebackup)

mkdir -p -- "$backup_dir"

# Timestamps sort in time order as plain strings, which the retention below relies on. Two
# backups within one second (a quick double switchover) get a -1, -2 ... suffix.
stamp=$(date -u +%Y%m%dT%H%M%SZ)
target=$backup_dir/$stamp
n=0
while [[ -e $target || -e $target.partial ]]; do
  n=$((n + 1))
  target=$backup_dir/$stamp-$n
done
partial=$target.partial

cleanup() {
  local status=$?
  if [[ -e $partial ]]; then
    rm -rf -- "$partial"
    log "removed the incomplete backup $partial"
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

log "backing up $name ($host:$port) as $user into $target with $pg_basebackup"
started=$SECONDS
# -X stream: the WAL needed to make the copy consistent is streamed alongside, so the backup
#            starts on its own; -c fast: checkpoint now instead of waiting for the next one;
# -w: never prompt for a password (there is no terminal).
"$pg_basebackup" -h "$host" -p "$port" -U "$user" -w -X stream -c fast \
  -l "pgwarden ${PGWARDEN_EVENT:-manual} $name" -D "$partial"
mv -T -- "$partial" "$target"
log "backup complete: $target ($(du -sh -- "$target" | cut -f1), $((SECONDS - started)) s)"

# Retention: complete backups are the directories named like a timestamp (never a .partial
# one); keep the newest $keep. Only names this script creates are considered, so other files
# an operator keeps in BACKUP_DIR are left alone.
mapfile -t complete < <(find "$backup_dir" -mindepth 1 -maxdepth 1 -type d -regextype posix-extended \
  -regex '.*/[0-9]{8}T[0-9]{6}Z(-[0-9]+)?' -printf '%f\n' | sort -V)
excess=$((${#complete[@]} - keep))
for ((i = 0; i < excess; i++)); do
  rm -rf -- "${backup_dir:?}/${complete[i]}"
  log "removed old backup $backup_dir/${complete[i]} (keeping the newest $keep)"
done
log "done: $((${#complete[@]} - (excess > 0 ? excess : 0))) backup(s) in $backup_dir"
