"""Person detector families, one module each (like `runtime.backends`); `runtime.Detector` picks one."""
