"""The one error type for bad configuration."""


class ConfigError(ValueError):
    """A configuration problem; the message always names the offending key (e.g. `mesh.fsdp`)."""

    def __init__(self, problems: list[tuple[str, str]] | str):
        if isinstance(problems, str):
            problems = [("", problems)]
        self.problems = list(problems)
        lines = [f"{key}: {msg}" if key else msg for key, msg in self.problems]
        super().__init__("invalid config:\n  " + "\n  ".join(lines) if len(lines) > 1 else "invalid config: " + lines[0])
