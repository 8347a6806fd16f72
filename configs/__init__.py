"""The bundled profiles (YAML configs), installed as ``vascalc.profiles``: ``vascalc config
list`` names them, ``--config NAME`` chooses one, ``vascalc config show NAME`` prints it."""
