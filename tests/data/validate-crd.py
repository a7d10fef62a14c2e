"""Validate every document of KIND in a YAML stream against a JSON schema; exit 1 on any
error or if no such document was found. Run with kubernetes-validate's venv python (it
brings PyYAML and jsonschema). Usage: validate-crd.py SCHEMA KIND FILE"""
import sys

import jsonschema
import yaml

schema_path, kind, path = sys.argv[1:4]
with open(schema_path) as f:
    schema = yaml.safe_load(f)
found = 0
errors = 0
with open(path) as f:
    for doc in yaml.safe_load_all(f):
        if not doc or doc.get("kind") != kind:
            continue
        found += 1
        for e in jsonschema.Draft7Validator(schema).iter_errors(doc):
            errors += 1
            print(f"ERROR {kind} {'/'.join(str(p) for p in e.absolute_path)}: {e.message}")
if not found:
    print(f"ERROR no {kind} document in {path}")
    sys.exit(1)
print(f"{kind}: {found} document(s), {errors} error(s)")
sys.exit(1 if errors else 0)
