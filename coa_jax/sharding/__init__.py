"""Named mesh, logical-axis rules per role, and sharded state creation."""
