# OPA policy reading riskd's live score (design §6): an enforcement point asks OPA,
# OPA asks riskd for the identity's current risk and combines it with its own rules.
#
# Input: {"identity": "...", "action": "...", "destination": "...", "privileged": bool}
# Result: data.riskd.authz.decision = "allow" | "step_up" | "deny", with `reasons`.
#
# riskd's answer is cached for a few seconds per identity (force_cache): scores move on
# the scale of seconds to minutes, and the cache keeps OPA from calling riskd on every
# request of a busy identity. Unknown identities are explicit (state "unknown", score
# null) so this policy decides about them on purpose. If riskd cannot be reached the
# lookup is undefined and the decision is deny (fail closed).
#
# Configuration through OPA's environment: RISKD_URL (default http://127.0.0.1:8080)
# and RISKD_TOKEN (riskd's api.token, empty when auth is off).

package riskd.authz

import rego.v1

riskd_url := object.get(opa.runtime().env, "RISKD_URL", "http://127.0.0.1:8080")

riskd_headers := {"authorization": concat(" ", ["Bearer", token])} if {
	token := object.get(opa.runtime().env, "RISKD_TOKEN", "")
	token != ""
} else := {}

# GET /v1/risk/{identity}, percent-encoded, cached for 5 s.
risk := response.body if {
	response := http.send({
		"method": "GET",
		"url": concat("", [riskd_url, "/v1/risk/", urlquery.encode(input.identity)]),
		"headers": riskd_headers,
		"force_cache": true,
		"force_cache_duration_seconds": 5,
		"timeout": "200ms",
		"raise_error": false,
	})
	response.status_code == 200
}

default decision := "deny"

decision := "deny" if {
	count(deny_reasons) > 0
} else := "step_up" if {
	count(step_up_reasons) > 0
} else := "allow" if {
	risk
}

deny_reasons contains "riskd unreachable" if not risk

deny_reasons contains sprintf("risk level %s (score %v)", [risk.level, risk.score]) if {
	risk.level == "critical"
}

# Privileged actions need a known identity with an established baseline.
deny_reasons contains "privileged action by an identity riskd has never seen" if {
	input.privileged
	risk.state == "unknown"
}

step_up_reasons contains sprintf("risk level %s (score %v)", [risk.level, risk.score]) if {
	risk.level == "high"
}

step_up_reasons contains "identity still learning its baseline" if {
	input.privileged
	risk.state == "learning"
}

# A volume spike on a privileged action steps up even below `high`.
step_up_reasons contains sprintf("%s: %s", [r.detector, r.detail]) if {
	input.privileged
	some r in risk.reasons
	r.detector in {"volume_spike", "data_volume_spike"}
	r.strength >= 0.5
}

reasons := deny_reasons | step_up_reasons
