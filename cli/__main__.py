from es_compact_cli.main import main

main()
