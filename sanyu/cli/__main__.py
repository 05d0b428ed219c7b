from sanyu.cli import main

main()
