from gpttui.entry import main

raise SystemExit(main())
