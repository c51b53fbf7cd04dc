#!/bin/sh
# build.sh - prepares the tiny test guest: Debian's kernel and a busybox
# initramfs, in a cache directory, once.
#
# Why a script and not a disk image: everything comes from Debian packages
# this machine already trusts (linux-image-*-amd64 fetched with
# `apt-get download` and unpacked with `dpkg-deb -x`, never installed, so no
# initramfs or boot-loader hook runs on the host; busybox-static), and the
# result is small enough to rebuild when the kernel package changes.
#
# Usage: build.sh [CACHE_DIR]   (default $COLO_GUEST_CACHE, else
#        /var/cache/colo-test/guest, else ~/.cache/colo-test/guest when
#        that is not writable). Prints the directory holding vmlinuz and
#        initrd.cpio.gz on its last line.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
cache=${1:-${COLO_GUEST_CACHE:-/var/cache/colo-test/guest}}
# Without root, the user's own cache directory.
if ! mkdir -p "$cache" 2>/dev/null || [ ! -w "$cache" ]; then
	cache=${XDG_CACHE_HOME:-$HOME/.cache}/colo-test/guest
	mkdir -p "$cache"
fi
cache=$(cd "$cache" && pwd)

# The kernel package linux-image-amd64 points at today.
kpkg=$(apt-cache depends linux-image-amd64 2>/dev/null |
	sed -n 's/^ *Depends: \(linux-image-[0-9].*-amd64\)$/\1/p' | head -n1)
if [ -z "$kpkg" ]; then
	apt-get update -qq >&2
	kpkg=$(apt-cache depends linux-image-amd64 |
		sed -n 's/^ *Depends: \(linux-image-[0-9].*-amd64\)$/\1/p' |
		head -n1)
fi
[ -n "$kpkg" ] || { echo "build.sh: no linux-image package known" >&2; exit 1; }
kver=${kpkg#linux-image-}
out="$cache/$kver"

# Rebuilt whenever this script or /init changes.
stamp="$out/.built-$(cat "$here/init" "$here/udpsum.c" "$0" | cksum |
	cut -d" " -f1)"
if [ -f "$stamp" ] && [ -s "$out/vmlinuz" ] && [ -s "$out/initrd.cpio.gz" ]; then
	echo "$out"
	exit 0
fi

# Serialize concurrent builds (two test processes may start together).
exec 9>"$cache/.lock"
flock 9
if [ -f "$stamp" ]; then
	echo "$out"
	exit 0
fi

work=$(mktemp -d "$cache/.work.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$out"

deb=$(ls "$cache"/"${kpkg}"_*.deb 2>/dev/null | head -n1 || true)
if [ -z "$deb" ]; then
	(cd "$work" && apt-get download "$kpkg" >&2) || {
		apt-get update -qq >&2
		(cd "$work" && apt-get download "$kpkg" >&2)
	}
	mv "$work"/"${kpkg}"_*.deb "$cache/"
	deb=$(ls "$cache"/"${kpkg}"_*.deb | head -n1)
fi
dpkg-deb -x "$deb" "$work/pkg"
cp "$work/pkg/boot/vmlinuz-$kver" "$work/vmlinuz"
mv "$work/vmlinuz" "$out/vmlinuz"

# The initramfs: busybox, /init, and the modules for virtio NIC and disk.
root="$work/root"
mkdir -p "$root/bin" "$root/sbin" "$root/proc" "$root/sys" "$root/dev" \
	"$root/tmp" "$root/www" "$root/lib/modules"
cp /bin/busybox "$root/bin/busybox"
for app in $("$root/bin/busybox" --list); do
	[ "$app" = busybox ] || ln -s busybox "$root/bin/$app"
done
cp "$here/init" "$root/init"
# The UDP service (udpsum.c): busybox has no UDP server. Static, so it
# needs nothing else from the host.
cc -static -Os -o "$root/bin/colo-udpsum" "$here/udpsum.c"
chmod 755 "$root/init"

moddir="$work/pkg/lib/modules/$kver/kernel"
# Order matters: dependencies first (checked against modules.dep below).
mods="drivers/virtio/virtio_ring.ko drivers/virtio/virtio.ko
drivers/virtio/virtio_pci_modern_dev.ko drivers/virtio/virtio_pci_legacy_dev.ko
drivers/virtio/virtio_pci.ko net/core/failover.ko drivers/net/net_failover.ko
drivers/net/virtio_net.ko drivers/block/virtio_blk.ko"
for m in $mods; do
	src=$(ls "$moddir/$m"* 2>/dev/null | head -n1)
	[ -n "$src" ] || { echo "build.sh: module $m missing" >&2; exit 1; }
	case "$src" in
	*.xz) xz -dc "$src" >"$root/lib/modules/$(basename "$m")" ;;
	*.zst) zstd -qdc "$src" >"$root/lib/modules/$(basename "$m")" ;;
	*) cp "$src" "$root/lib/modules/$(basename "$m")" ;;
	esac
	echo "$(basename "$m")" >>"$root/lib/modules/order"
done

# busybox's cpio (no cpio package needed); checked in two steps since
# sh has no pipefail.
(cd "$root" && find . | /bin/busybox cpio -o -H newc) >"$work/initrd.cpio" 2>/dev/null
[ -s "$work/initrd.cpio" ] || { echo "build.sh: cpio failed" >&2; exit 1; }
# Renamed into place: a QEMU starting meanwhile reads the old or the new
# file, never half of one.
gzip -1 -c "$work/initrd.cpio" >"$work/initrd.cpio.gz"
mv "$work/initrd.cpio.gz" "$out/initrd.cpio.gz"
rm -f "$out"/.built-*
touch "$stamp"
echo "$out"
