from nsbridge.cli.main import main

raise SystemExit(main())
