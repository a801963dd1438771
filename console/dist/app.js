// the console's script (built from console/)
