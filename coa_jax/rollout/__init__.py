"""Agent inference: jitted prefill/decode/append on device, the tool loop on the host."""
