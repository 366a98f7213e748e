"""The ``promote`` verb: a registered challenger replaces the champion only when a paired bootstrap
says it is better on the same images."""
