from gansurvey.cli import main

raise SystemExit(main())
