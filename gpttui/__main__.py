from gpttui.cli import main

raise SystemExit(main())
