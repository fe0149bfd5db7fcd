"""Compose files on nsbridge: a lab is a compose file (Compose's format, the
networking subset), brought up, converged and taken down with Compose's
names and labels.

- model.py   the project as understood: services, networks (records, no I/O)
- load.py    finding, reading (PyYAML), interpolating and merging the files
- parse.py   the file's dictionaries -> the model, with Compose's errors and
             one warning line per key nsbridge does not honour
- naming.py  Compose's names and labels (project, `<project>_default`,
             `<project>-<service>-1`, com.docker.compose.*)
- plan.py    what the file asks for against what runs: the steps that
             converge one to the other (pure; `up --dry-run` prints it)
- apply.py   the steps, run through the Engine; `down`
- render.py  `config` (the file as understood) and `ps`
- schema.json a JSON schema of what nsbridge reads, for editors
"""
