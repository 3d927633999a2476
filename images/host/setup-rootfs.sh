#!/bin/sh
# Runs inside the freshly bootstrapped rootfs (chroot) to make it a systemd container host.
set -eu
# Units that have no business in a container: they fail or wait for hardware.
for unit in getty.target systemd-udevd.service systemd-udev-trigger.service \
            systemd-networkd-wait-online.service systemd-firstboot.service \
            systemd-remount-fs.service sys-kernel-debug.mount sys-kernel-tracing.mount \
            dev-hugepages.mount systemd-logind.service ssh.service; do
    ln -sf /dev/null "/etc/systemd/system/$unit"
done
# Each container gets its own machine id at first boot.
: > /etc/machine-id
rm -f /var/lib/dbus/machine-id
# Keep the image small: apt lists and caches are rebuilt by apt-get update when needed.
apt-get clean
rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /usr/share/doc/* /usr/share/man/*
