"""Labs: a folder with a compose file, a README of tasks and a checks.yaml.

- folder.py   where a lab runs: its own sandbox host named after it (the
              default, so that many labs share one VM), or the current host
- checks.py   checks.yaml: what must hold, graded with real probes from
              inside the containers (nsbridge.probe)
- lessons.py  the lessons shipped with the package (`lab ls`, `lab get`)
- lessons/    the lessons themselves (package data)
"""
