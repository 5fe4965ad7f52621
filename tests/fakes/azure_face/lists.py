"""The fake Azure Face's large face lists: create, get and delete a list, add and delete a
persisted face, train a list and report its training, and find-similar against the faces of
the list's last completed training."""

from __future__ import annotations

import time
import uuid

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from app.faces.providers.base import FaceBox
from tests.fakes.azure_face.base import FakeFaceBase
from tests.fakes.azure_face.state import FakeList, _error, _now, _Refused, confidence


class FakeLargeFaceLists(FakeFaceBase):
    """The large-face-list and find-similar endpoints, on the state of :class:`FakeFaceBase`."""

    def _not_found(self, list_id: str) -> JSONResponse:
        return _error(404, "LargeFaceListNotFound", f"Large face list '{list_id}' is not found.")

    async def _list(self, request: Request) -> Response:
        list_id = request.path_params["list_id"]
        if request.method == "PUT":
            if refused := await self._gate("create_list", request):
                return refused
            body = await request.json()
            with self._lock:
                if list_id in self.lists:
                    return _error(409, "LargeFaceListExists", "Large Face List already exists.")
                self.lists[list_id] = FakeList(
                    list_id,
                    body.get("name") or list_id,
                    body.get("recognitionModel") or "recognition_01",
                    body.get("userData"),
                )
            return Response(status_code=200)
        if request.method == "DELETE":
            if refused := await self._gate("delete_list", request):
                return refused
            with self._lock:
                if self.lists.pop(list_id, None) is None:
                    return self._not_found(list_id)
            return Response(status_code=200)
        if refused := await self._gate("get_list", request):
            return refused
        with self._lock:
            lst = self.lists.get(list_id)
        if lst is None:
            return self._not_found(list_id)
        body = {"largeFaceListId": lst.list_id, "name": lst.name, "userData": lst.user_data}
        if request.query_params.get("returnRecognitionModel", "false").lower() == "true":
            body["recognitionModel"] = lst.recognition_model
        return JSONResponse(body)

    async def _add_face(self, request: Request) -> Response:
        if refused := await self._gate("add_face", request):
            return refused
        list_id = request.path_params["list_id"]
        data = await request.body()
        with self._lock:
            lst = self.lists.get(list_id)
        if lst is None:
            return self._not_found(list_id)
        try:
            seen = await run_in_threadpool(self._faces_in, data)
        except _Refused as exc:
            return exc.response
        target = request.query_params.get("targetFace")
        if target:
            try:
                left, top, width, height = (int(v) for v in target.split(","))
            except ValueError:
                return _error(400, "BadArgument", "Invalid argument targetFace.")
            box = FaceBox(left, top, left + width, top + height)
            scored = sorted(((box.iou(s.box), s) for s in seen), key=lambda item: -item[0])
            if not scored or scored[0][0] < 0.3:
                return _error(
                    400, "InvalidImage", "No face detected in the image or in the specified targetFace area."
                )
            face = scored[0][1]
        else:
            if not seen:
                return _error(400, "InvalidImage", "No face detected in the image.")
            if len(seen) > 1:
                return _error(400, "InvalidImage", "There is more than 1 face in the image.")
            face = seen[0]
        persisted = str(uuid.uuid4())
        with self._lock:
            lst.faces[persisted] = (face.descriptor, request.query_params.get("userData"))
            lst.last_action = _now()
        return JSONResponse({"persistedFaceId": persisted})

    async def _delete_face(self, request: Request) -> Response:
        if refused := await self._gate("delete_face", request):
            return refused
        list_id, face_id = request.path_params["list_id"], request.path_params["face_id"]
        with self._lock:
            lst = self.lists.get(list_id)
            if lst is None:
                return self._not_found(list_id)
            if lst.faces.pop(face_id, None) is None:
                return _error(404, "PersistedFaceNotFound", "Persisted face is not found.")
            lst.last_action = _now()
        return Response(status_code=200)

    async def _train(self, request: Request) -> Response:
        if refused := await self._gate("train", request):
            return refused
        list_id = request.path_params["list_id"]
        with self._lock:
            lst = self.lists.get(list_id)
            if lst is None:
                return self._not_found(list_id)
            lst.refresh()
            if lst.status == "running":
                return _error(
                    409,
                    "ConcurrentOperationConflict",
                    f"There is a conflict operation on resource {list_id}, please try later.",
                )
            lst._snapshot = {pid: desc for pid, (desc, _) in lst.faces.items()}
            lst._done_at = time.monotonic() + self.train_seconds
            lst.status = "running"
            lst.last_action = _now()
        return Response(status_code=202)

    async def _training(self, request: Request) -> Response:
        if refused := await self._gate("training_status", request):
            return refused
        list_id = request.path_params["list_id"]
        with self._lock:
            lst = self.lists.get(list_id)
            if lst is None:
                return self._not_found(list_id)
            lst.refresh()
            if lst.status == "nonstarted":
                return _error(404, "LargeFaceListNotTrained", f"Large face list '{list_id}' is not trained.")
            body = {
                "status": lst.status,
                "createdDateTime": lst.created,
                "lastActionDateTime": lst.last_action,
                "lastSuccessfulTrainingDateTime": lst.last_success,
                "message": None,
            }
        return JSONResponse(body)

    async def _find_similar(self, request: Request) -> Response:
        if refused := await self._gate("find_similar", request):
            return refused
        body = await request.json()
        face_id, list_id = body.get("faceId"), body.get("largeFaceListId")
        top = int(body.get("maxNumOfCandidatesReturned") or 20)
        mode = body.get("mode") or "matchPerson"
        if not list_id:
            return _error(400, "BadArgument", "Only largeFaceListId is supported by this fake.")
        with self._lock:
            probe = self.face_ids.get(face_id or "")
            lst = self.lists.get(list_id)
            if lst is not None:
                lst.refresh()
        if probe is None:
            return _error(404, "FaceNotFound", "Face is not found.")
        if lst is None:
            return self._not_found(list_id)
        if lst.trained is None:
            return _error(400, "LargeFaceListNotTrained", f"Large face list '{list_id}' is not trained.")
        if probe[1] != lst.recognition_model:
            return _error(400, "BadArgument", "'recognitionModel' is incompatible.")
        ranked = sorted(
            ((pid, confidence(probe[0], desc)) for pid, desc in lst.trained.items()),
            key=lambda item: -item[1],
        )
        if mode == "matchPerson":
            ranked = [(pid, c) for pid, c in ranked if c >= 0.5]
        return JSONResponse([{"persistedFaceId": pid, "confidence": round(c, 5)} for pid, c in ranked[:top]])
