#!/bin/sh
# pathagent post-install (deb postinst, rpm %post).
#
# The unit is only made known to systemd, never enabled or started: the
# shipped configuration names a placeholder bucket, so the agent has nothing
# useful to do until the administrator edits /etc/pathagent/pathagent.yaml.
# On an upgrade a running agent is restarted onto the new binary; a stopped
# one stays stopped.
#
# systemctl is called only when systemd is the running init
# (/run/systemd/system exists): in containers, chroots and image builds
# there is no manager to talk to, and failing there would leave the package
# half-configured.
set -e

upgrade=no
case "$1" in
	configure) [ -n "$2" ] && upgrade=yes ;; # deb: $2 is the old version
	2) upgrade=yes ;;                        # rpm: 2 packages installed
esac

if [ -d /run/systemd/system ]; then
	systemctl daemon-reload || true
	if [ "$upgrade" = yes ]; then
		systemctl try-restart pathagent.service || true
	fi
fi
exit 0
