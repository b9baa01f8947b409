#!/bin/sh
# pathagent post-removal (deb postrm, rpm %postun): forget the removed unit.
# The agent keeps no state (its user is dynamic, it writes no files), so a
# purge has nothing more to clean up than dpkg already does.
set -e

if [ -d /run/systemd/system ]; then
	systemctl daemon-reload || true
fi
exit 0
