from s3tvr.cli import main

raise SystemExit(main())
