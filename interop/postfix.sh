#!/bin/sh
# The postfix host of the interop network: Postfix for postfix.example with DANE for outgoing
# mail, its main.cf written by conformance/interop_net.py into /state. Runs in the foreground.
set -eu
cp /state/main.cf /etc/postfix/main.cf
# No chroot: a chrooted smtp(8) has no resolv.conf and cannot look up MX records.
postconf -F '*/*/chroot = n'
# A local user that can receive mail: interop@postfix.example.
id interop >/dev/null 2>&1 || useradd -m -s /usr/sbin/nologin interop
# postfix(1) waits for main.cf to be older than a second or two; back-date it.
touch -d '-1 min' /etc/postfix/main.cf /etc/postfix/master.cf
postfix check
exec postfix start-fg
