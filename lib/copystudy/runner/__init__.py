"""The runner: parameters and their checks, run folders, execution with papermill, the command line and the site."""
