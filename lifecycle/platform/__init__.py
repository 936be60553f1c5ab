"""What the platform says: flag and env names, defaults, precedence and placeholder paths."""
