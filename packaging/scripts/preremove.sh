#!/bin/sh
# pathagent pre-removal (deb prerm, rpm %preun).
#
# Only on a real removal, not on the removal half of an upgrade: stop the
# agent and drop the enable symlinks, which would otherwise dangle.
# Disabling edits files only, so it works with no systemd running;
# stopping needs a running manager.
set -e

case "$1" in
	remove|0) ;;   # deb: remove; rpm: 0 packages left
	*) exit 0 ;;
esac

if [ -d /run/systemd/system ]; then
	systemctl stop pathagent.service || true
fi
if command -v systemctl >/dev/null 2>&1; then
	systemctl --no-reload disable pathagent.service >/dev/null 2>&1 || true
fi
exit 0
