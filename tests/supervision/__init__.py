"""stack_supervision: the config it writes, its restart window, and real supervisord runs."""
