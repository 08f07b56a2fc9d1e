from hudhud.worker.ops.cli import main

main()
