"""``/datasets``: upload a Parquet, CSV or NPZ table (validated, schema inferred), read it back, delete it.

Uploads are read under the app's :class:`~service.upload_parsing.UploadReader` limits
(``app.state.upload_reader``): in a child process, refused with a 413 naming the limit."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, Path, Request, Response, UploadFile
from fastapi.concurrency import run_in_threadpool
from sqlalchemy.orm import Session, sessionmaker

from grouping.errors import InputError
from service.datasets import delete_dataset, discard_upload, register_location, store_upload
from service.db import transaction
from service.errors import ApiError, problem_responses
from service.models import Dataset
from service.routes import deps
from service.schemas import DatasetOut, LongText, Name, ResourceId
from service.settings import Settings

router = APIRouter(tags=["datasets"])
Sessions = Annotated[sessionmaker[Session], Depends(deps.session_factory)]
Project = Annotated[str, Depends(deps.project)]


def dataset_out(row: Dataset) -> DatasetOut:
    return DatasetOut(
        id=row.id,
        name=row.name,
        format=row.format,
        size_bytes=row.size_bytes,
        sha256=row.sha256,
        n_rows=row.n_rows,
        columns=row.columns,
        created_at=row.created_at,
        links={"self": f"/datasets/{row.id}"},
    )


@router.post(
    "/datasets",
    status_code=201,
    response_model=DatasetOut,
    responses=problem_responses(
        {
            413: "the file is over the upload size, or reading it would exceed a limit: `resource` names "
            "it (upload_bytes, rows, columns, bytes decoded, memory, seconds), `limit` and `found` give the "
            "numbers",
            422: "not a valid Parquet, CSV or NPZ table (the reason is given)",
        }
    ),
)
async def upload_dataset(
    request: Request,
    response: Response,
    sessions: Sessions,
    project: Project,
    settings: Annotated[Settings, Depends(deps.settings)],
    file: Annotated[UploadFile | None, File(description="a .parquet, .csv or .npz file")] = None,
    location: Annotated[
        LongText | None,
        Form(description="instead of a file: the path of one under a configured dataset root"),
    ] = None,
    name: Annotated[Name | None, Form(description="a label (default: the file's name)")] = None,
) -> DatasetOut:
    """Register a dataset — an uploaded file, or a file already under one of the server's
    ``dataset_roots`` — and use its ``id`` as a job's ``dataset`` (with ``tasks`` naming its columns).

    The file is read once, in a separate process under resource limits (rows, columns, decoded
    bytes checked from its metadata first); its column summary is stored with the dataset."""
    reader = request.app.state.upload_reader
    if (file is None) == (location is None):
        raise InputError("file", "give exactly one of a file to upload or a location")
    if file is not None:
        row = await run_in_threadpool(
            store_upload,
            file.file,
            file.filename or "",
            directory=settings.datasets_dir,
            project=project,
            max_bytes=settings.max_upload_bytes,
            name=name,
            reader=reader,
        )
    else:
        row = await run_in_threadpool(
            register_location,
            location,
            roots=settings.dataset_roots,
            project=project,
            name=name,
            reader=reader,
        )
    try:
        with transaction(sessions) as session:
            session.add(row)
    except BaseException:
        if file is not None:
            discard_upload(row)  # no row, no file: a failed registration leaves nothing behind
        raise
    response.headers["Location"] = f"/datasets/{row.id}"
    return dataset_out(row)


@router.get(
    "/datasets/{dataset_id}", response_model=DatasetOut, responses=problem_responses({404: "no such dataset"})
)
def get_dataset(
    dataset_id: Annotated[ResourceId, Path(description="the dataset's id")],
    sessions: Sessions,
    project: Project,
) -> DatasetOut:
    """An uploaded dataset's inferred schema: per column its dtype, shape, missing and distinct values."""
    with sessions() as session:
        row = session.get(Dataset, dataset_id)
    if row is None or row.project != project:
        raise ApiError(404, f"no dataset {dataset_id}", field="dataset_id")
    return dataset_out(row)


@router.delete(
    "/datasets/{dataset_id}",
    status_code=204,
    response_class=Response,
    responses=problem_responses(
        {404: "no such dataset", 409: "a queued or running job uses the dataset (`jobs` lists them)"}
    ),
)
def remove_dataset(
    dataset_id: Annotated[ResourceId, Path(description="the dataset's id")],
    sessions: Sessions,
    project: Project,
    settings: Annotated[Settings, Depends(deps.settings)],
) -> Response:
    """Delete a dataset and its uploaded file (a file registered by location stays where it is).
    Refused with 409 while a queued or running job uses it; finished jobs keep their results."""
    delete_dataset(sessions, dataset_id, project, uploads=settings.datasets_dir)
    return Response(status_code=204)
