from collab.cli.main import main

main()
