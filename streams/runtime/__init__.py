"""What the deciding agents run on: the exactly-once loop, recovery, tables and stores."""
