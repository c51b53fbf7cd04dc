#!/bin/sh
# colo-hook.sh - an example operator hook for `colo up` ([pair] hook =
# /etc/colo/colo-hook.sh). colo up runs it as
#   HOOK EVENT HOST PAIR
# with COLO_EVENT, COLO_HOST, COLO_PEER, COLO_PAIR, COLO_ROLE, COLO_EPOCH
# and COLO_DETAIL in its environment (doc/colo-up.1.md, HOOK). It is not
# waited for and its exit status is ignored, so it must not block for
# long. This one logs every event to syslog and mails the events an
# operator must act on when COLO_HOOK_MAILTO is set (in the unit's
# Environment=) and mail(1) exists.
event=${1:-$COLO_EVENT}
host=${2:-$COLO_HOST}
pair=${3:-$COLO_PAIR}
msg="pair $pair: $event on $host (role ${COLO_ROLE:-?}, epoch ${COLO_EPOCH:-?})${COLO_DETAIL:+: $COLO_DETAIL}"

logger -t colo-hook -- "$msg" 2>/dev/null || echo "colo-hook: $msg" >&2

case $event in
failover | degraded | deposed | quorum-lost)
	# the pair is not protected any more: someone should look
	if [ -n "${COLO_HOOK_MAILTO:-}" ] && command -v mail >/dev/null; then
		echo "$msg" | mail -s "colo: $pair $event on $host" \
			"$COLO_HOOK_MAILTO"
	fi
	;;
esac
exit 0
