#!/bin/sh
# mkcreds.sh - test credentials in QEMU's tls-creds-x509 layout.
#
#   mkcreds.sh ca DIR              a new CA: DIR/ca-cert.pem, DIR/ca-key.pem
#   mkcreds.sh host CADIR OUT NAME OUT/ gets ca-cert.pem and a server and a
#                                  client certificate (and keys) for host NAME,
#                                  and dh-params.pem (RFC 7919 ffdhe2048)
#
# dh-params.pem: without it every QEMU that creates a tls-creds-x509 server
# object (each standby of colo vm) generates DH parameters first, which
# took 0.7-6 s here and stalled the checkpoint behind it (doc/security.md).
# A named group is public and made at once.
# EC P-256 keys (quick to make), one day of validity: throwaway test PKI.
set -eu
umask 077
days=1
case "$1" in
ca)
	dir=$2
	mkdir -p "$dir"
	openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
		-nodes -keyout "$dir/ca-key.pem" -out "$dir/ca-cert.pem" \
		-days $days -subj "/CN=colo test CA $$" \
		-addext "basicConstraints=critical,CA:TRUE" \
		-addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
	;;
host)
	ca=$2 out=$3 name=$4
	mkdir -p "$out"
	cp "$ca/ca-cert.pem" "$out/ca-cert.pem"
	for kind in server client; do
		usage=serverAuth
		[ $kind = client ] && usage=clientAuth
		openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
			-nodes -keyout "$out/$kind-key.pem" \
			-out "$out/$kind.csr" -subj "/CN=$name" 2>/dev/null
		printf '%s\n' "subjectAltName=DNS:$name" \
			"extendedKeyUsage=$usage" \
			"basicConstraints=CA:FALSE" >"$out/$kind.ext"
		openssl x509 -req -in "$out/$kind.csr" -CA "$ca/ca-cert.pem" \
			-CAkey "$ca/ca-key.pem" -CAcreateserial \
			-out "$out/$kind-cert.pem" -days $days \
			-extfile "$out/$kind.ext" 2>/dev/null
		rm -f "$out/$kind.csr" "$out/$kind.ext"
	done
	openssl genpkey -genparam -algorithm DH -pkeyopt group:ffdhe2048 \
		-out "$out/dh-params.pem" 2>/dev/null
	;;
*)
	echo "usage: mkcreds.sh ca DIR | host CADIR OUT NAME" >&2
	exit 2
	;;
esac
