"""The tour: the seeds' lesson run by jgd."""
