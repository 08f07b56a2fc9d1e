"""hudhud: delivers SMS, email and voice through Taqnyat and Taifa Mail."""
