"""Validates an OpenAPI 3.1 document (a file path) with openapi-spec-validator.

Prints every error with the place it was found and exits 1 if there is any.
"""

import json
import sys

from openapi_spec_validator import OpenAPIV31SpecValidator


def main(path: str) -> int:
    with open(path, encoding="utf-8") as file:
        document = json.load(file)
    errors = list(OpenAPIV31SpecValidator(document).iter_errors())
    for error in errors:
        place = "/".join(str(part) for part in error.absolute_path) or "(root)"
        print(f"{path}: {place}: {error.message}", file=sys.stderr)
    if errors:
        print(f"{path}: {len(errors)} error(s); not valid OpenAPI 3.1", file=sys.stderr)
        return 1
    print(f"{path}: valid OpenAPI {document.get('openapi')}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
