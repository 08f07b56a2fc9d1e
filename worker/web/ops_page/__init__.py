"""The operator page of `hudhud api` (`/ops`): its figures, their masking, and their HTML."""
