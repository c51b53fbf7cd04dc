#!/usr/bin/env python3
"""bench/cluster/timeline.py DIR - the failover timeline of one kept run
(CLUSTER_KEEP_LOGS=DIR python3 tests/cluster/cluster.py primary_dies ...;
also vm_primary_dies), from host b's corosync log (timestamp: hires) and
colo up's: the fault (the last token b received: corosync's "Token has
not been received in X ms" minus X), token loss, new membership, colo up
hearing the departure, quorum, the claim, colo vm's and the proxy's
failover, the first frames released; in ms from the fault."""
import re
import sys

d = sys.argv[1]
def ts_c(line):  # corosync hires: 'Nov 29 13:46:51.383'
    m = re.match(r'\w+ +\d+ (\d+):(\d+):(\d+)\.(\d+)', line)
    h, mi, s, ms = map(int, m.groups()); return ((h*60+mi)*60+s)*1000+ms
def ts_u(line):
    m = re.match(r'\S+T(\d+):(\d+):(\d+)\.(\d+)Z', line)
    h, mi, s, ms = map(int, m.groups()); return ((h*60+mi)*60+s)*1000+ms
cor = open(d + '/b-corosync.log').read().splitlines()
up = open(d + '/up-b.log').read().splitlines()
def last_before(lines, pat, f, limit=None):
    r = [f(l) for l in lines if re.search(pat, l)]
    r = [x for x in r if limit is None or x <= limit]
    return r[-1] if r else None
claim = last_before(up, r'claiming the primary role \(epoch 2\)', ts_u)
fo = last_before(up, r'failed over: serving', ts_u)
rel = [ts_u(l) for l in up if 'lease valid again' in l and ts_u(l) >= (fo or 0)]
left = last_before(up, r'left the group', ts_u, claim)
m = [(ts_c(l), int(re.search(r'in (\d+) ms', l).group(1))) for l in cor if 'Token has not been received' in l]
m = [x for x in m if x[0] <= claim]
last_tok = m[-1][0] - m[-1][1] if m else None
loss = last_before(cor, r'A processor failed', ts_c, claim)
memb = last_before(cor, r'A new membership', ts_c, claim)
quor = last_before(cor, r'QUORUM\] Members\[1\]', ts_c, claim)
vmf = last_before(up, r'colo vm secondary: failover', ts_u)
pts = [('last token (fault)', last_tok), ('token loss', loss), ('new membership', memb),
       ('colo up sees leave', left), ('quorum (votequorum)', quor), ('claim', claim),
       ('vm failover', vmf), ('proxy failed over', fo), ('first frames released', rel[0] if rel else None)]
t0 = last_tok
for n, t in pts:
    if t is not None:
        print('%-24s +%5d ms' % (n, t - t0))
