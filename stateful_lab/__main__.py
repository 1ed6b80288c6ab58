from stateful_lab.cli import main

main()
