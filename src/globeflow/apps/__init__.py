"""What users run: the command line (:mod:`.cli`), the web server (:mod:`.server`), the jobs behind
the commands (:mod:`.predict`, :mod:`.photos`, :mod:`.mapping`, :mod:`.export`), the demos and their
tasks (:mod:`.demos`, :mod:`.tasks`). The top layer: it calls the library and formats; every job is a
Python function a user can call too."""

__all__: list[str] = []  # a namespace of subpackages and job modules, each imported by name
