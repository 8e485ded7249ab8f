"""The Google Secret Manager (google-cloud-secret-manager) double checked by the official SDK, unmodified (issue 36; being built).

Called by conformance.py: `run(addresses, check, raises)`, `addresses` being the JSON line
`serve_doubles` prints.
"""


def run(addresses, check, raises):
    pass
