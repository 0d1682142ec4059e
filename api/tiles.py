"""Routes of this area; the owner of the module fills them in."""

from fastapi import APIRouter

router = APIRouter()
