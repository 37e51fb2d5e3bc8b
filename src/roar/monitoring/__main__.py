from roar.monitoring.render import main

raise SystemExit(main())
