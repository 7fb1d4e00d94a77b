#!/usr/bin/env python3
"""Fetch XTTS v2 into models/xtts_v2 (the same as `s3tvr download xtts`). Shows the license first."""

import argparse
import sys

from s3tvr.errors import S3tvrError
from s3tvr.weights.downloaded import download

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--accept-license", action="store_true", help="accept the Coqui Public Model License without asking")
    args = parser.parse_args()
    try:
        for path in download(["xtts"], accept_license=args.accept_license):
            print(path)
    except S3tvrError as exc:
        print(f"xtts_v2_download: error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        print("xtts_v2_download: interrupted; run again to resume", file=sys.stderr)
        sys.exit(130)
