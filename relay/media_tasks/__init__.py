"""Async generation tasks (Midjourney, music, video, audio): submitted at once, polled by Celery, settled once."""
