"""Console pages, one module per area. Views parse input, call one selector or service, and render."""
