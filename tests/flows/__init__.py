"""Flow files, the flow runner, reports and the run / validate / test commands, end to end."""
