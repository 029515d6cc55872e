"""adapterxfer: English intermediate-task training with parameter-efficient modules, zero-shot on XTREME."""

__version__ = "0.2.0"
